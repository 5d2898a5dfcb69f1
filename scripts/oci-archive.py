"""Writes an OCI image layout archive of one directory, for `ctr images import`.

    python3 scripts/oci-archive.py NAME ROOTFS_DIR OUT.tar ENTRYPOINT_JSON

NAME (e.g. localhost/clear-node-pause:1) goes in the index's io.containerd.image.name
annotation, which containerd takes as the image's name: no registry is involved. ROOTFS_DIR
becomes the single layer, owners and modes as they are on disk. Used by scripts/node.sh
(the pause image) and examples/consumers/image.sh (the consumer pods' image).
"""

import hashlib
import io
import json
import os
import sys
import tarfile


def digest_of(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


def main():
    name, rootfs, out, entrypoint = sys.argv[1:5]
    layer_path = out + ".layer"
    with tarfile.open(layer_path, mode="w", format=tarfile.PAX_FORMAT) as layer:
        layer.add(rootfs, arcname=".")
    layer_digest = digest_of(layer_path)
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": json.loads(entrypoint) or None},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": _size(layer_path)}],
    }).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": len(manifest),
        "annotations": {"io.containerd.image.name": name},
    }]}).encode()
    with tarfile.open(out, mode="w") as archive:
        _add_bytes(archive, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _add_bytes(archive, "index.json", index)
        _add_bytes(archive, "blobs/sha256/" + config_digest[7:], config)
        _add_bytes(archive, "blobs/sha256/" + manifest_digest[7:], manifest)
        archive.add(layer_path, arcname="blobs/sha256/" + layer_digest[7:])
    os.remove(layer_path)


def _size(path):
    return os.path.getsize(path)


def _add_bytes(archive, path, data):
    info = tarfile.TarInfo(path)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    main()
