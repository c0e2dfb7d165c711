import { basename, dirname } from 'node:path';
import { parseLocation } from './location.js';
import type { ObjectStore } from './object-store.js';
import { openStore } from './open-store.js';
import { withResilientReads } from './resilient-read.js';
import type { S3ClientOptions } from './s3-store.js';

/**
 * Opens the store holding one object named by a canonical uri (as plan.json records inputs),
 * rooted so that the object's key is its name: a local file's folder, or the bucket's root.
 * Stores are cached per root, so a worker reading thousands of splits reuses one, and their
 * ranged reads resume from the last byte received after a dropped connection.
 */
export function createObjectOpener(s3: S3ClientOptions | undefined): (uri: string) => { store: ObjectStore; key: string } {
  const stores = new Map<string, ObjectStore>();
  return (uri) => {
    const loc = parseLocation(uri, '/');
    const root = loc.kind === 'local' ? dirname(loc.path) : `s3://${loc.bucket}/`;
    const key = loc.kind === 'local' ? basename(loc.path) : loc.key;
    let store = stores.get(root);
    if (store === undefined) {
      store = withResilientReads(openStore(loc.kind === 'local' ? { kind: 'local', path: root } : { kind: 's3', bucket: loc.bucket, key: '' }, s3));
      stores.set(root, store);
    }
    return { store, key };
  };
}
