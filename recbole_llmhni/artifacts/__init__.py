"""The plugin's files: one place for writing, hashing, storing and safely reading them.

This is the lowest layer of the package (it imports nothing else of it):

* :mod:`.files` -- atomic writes (temporary file in the same folder, ``fsync``, rename, mode
  0644, the temporary file removed on failure), SHA-256 of files, JSON-lines and TSV tables;
* :mod:`.fingerprint` -- content digests: of JSON documents, of edge lists by raw id, of
  ``{raw id: text}`` tables;
* :mod:`.store` -- ``<llmhni_artifact_dir>/<dataset>/<stage>/<key>/`` stage directories with a
  manifest written last, used by every offline stage (S1-S2 and S4-S7);
* :mod:`.safe_pickle` -- the allow-list unpickler for RLMRec's pickles;
* :mod:`.vectors` -- reading and checking vector files (``.npz``, ``.npy``, RLMRec pickles).
"""
from recbole_llmhni.artifacts.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    atomic_writer,
    read_jsonl,
    read_tsv,
    sha256_file,
    write_tsv,
)
from recbole_llmhni.artifacts.fingerprint import digest, edges_fingerprint, texts_fingerprint
from recbole_llmhni.artifacts.store import MANIFEST, StageDir, artifact_dir

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_writer",
    "read_jsonl",
    "read_tsv",
    "sha256_file",
    "write_tsv",
    "digest",
    "edges_fingerprint",
    "texts_fingerprint",
    "MANIFEST",
    "StageDir",
    "artifact_dir",
]
