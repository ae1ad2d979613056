"""What a dataset module provides, and the download stage's shared steps.

A dataset module defines one subclass of :class:`DatasetSpec`: its ``name`` and ``modalities``, its ``sources``
(file name, URL or ``None`` when it must be placed by hand, md5 where one is published, a size cap where none is),
its params ``schema`` (the block without ``split``), its ``split_default`` and ``convert(files, p, folder)``, which
writes ``dataset.h5`` + ``manifest.json`` through :meth:`DatasetSpec.write`. The download stage validates the block,
gathers the sources (a placed copy in ``data/manual/<name>/``, an earlier download, or a fresh one; missing files are
one line naming them and that folder) and converts. With ``split.protocol: lists`` the published lists are matched
to the items while writing (see :mod:`hashbench.lists`).
"""
from __future__ import annotations

import abc
import hashlib
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .. import lists, splits
from ..config import Param, validate
from ..data import file_md5, write_dataset
from ..download import DOWNLOAD_ROOT, MANUAL_ROOT, fetch
from ..errors import HashbenchError

IMAGE_PARAMS = {"seed": Param(0, int, ge=0), "image_size": Param(256, int, ge=32)}  # files read at image_size^2
OFFICIAL_SPLIT = {"protocol": "partition", "n_train": None, "train_in_database": True}
LIST_SPLIT = {"protocol": "lists", "format": "deephash"}


def one_line(text: object) -> str:
    return " ".join(str(text).split())


@dataclass(frozen=True)
class Source:
    """One file a dataset reads, under its name in ``data/manual/<dataset>/`` (a list lives in ``lists/``)."""

    name: str
    url: str | None = None  # None: no public download; it must be placed by hand
    md5: str | None = None  # published checksum (None: none is published; its md5 is recorded in the manifest)
    bytes: int | None = None
    optional: bool = False  # read only when placed
    max_bytes: int | None = None  # cap for a file with no published checksum
    git_blob: str | None = None  # git object id where a repository commits the file (checked instead of an md5)
    where: str = ""  # where a user gets it, for the error line


def git_blob_id(path: Path) -> str:
    """The git object id of a file's content (sha1 of ``blob <size>\\0`` + content)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class DatasetSpec(abc.ABC):
    """A dataset: sources, params schema, split default and converter (see the module doc)."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    page: ClassVar[str] = ""
    license: ClassVar[str] = ""
    modalities: ClassVar[frozenset] = frozenset()
    sources: ClassVar[tuple[Source, ...]] = ()
    schema: ClassVar[dict[str, Param]] = {}
    split_default: ClassVar[dict] = {}
    list_formats: ClassVar[tuple[str, ...]] = ("deephash",)  # formats the lists protocol accepts here
    database_list: ClassVar[str] = "optional"  # "required": the published database list must be placed too
    list_where: ClassVar[dict[str, str]] = {}  # format -> where its published lists are (for the error line)
    embedded: ClassVar[bool] = False

    # ------------------------------------------------------------------------------------------------- params
    def validate(self, block) -> dict:
        """The block with defaults filled in and its ``split`` protocol checked; one line naming block.key."""
        block = {} if block is None else block
        if not isinstance(block, dict):
            raise HashbenchError(f"{self.name}: must be a mapping of keys to values, got {block!r}")
        split = splits.validate_protocol(block.get("split", self.split_default), where=f"{self.name}.split")
        if split["protocol"] == "lists" and not self.list_formats:
            raise HashbenchError(f"{self.name}.split.protocol: lists is not allowed for {self.name}, whose items have "
                                 f"no file names to match; use {self.split_default['protocol']}")
        if split["protocol"] == "lists" and split["format"] not in self.list_formats:
            raise HashbenchError(f"{self.name}.split.format: {split['format']!r} is not allowed for {self.name}; use "
                                 f"{', '.join(self.list_formats)}")
        out = validate(self.name, {k: v for k, v in block.items() if k != "split"}, self.schema)
        out["split"] = split
        self.check(out)
        return out

    def check(self, p: dict) -> None:  # noqa: B027 (an optional hook: most datasets have no cross-key rule)
        """Rules across keys of a validated block (one-line HashbenchError); none by default."""

    # ------------------------------------------------------------------------------------------------ sources
    def list_sources(self, split: dict) -> list[Source]:
        if split["protocol"] != "lists":
            return []
        return [Source(name, optional=optional and self.database_list == "optional", max_bytes=lists.MAX_LIST_BYTES,
                       where=self.list_where.get(split["format"], f"the published {split['format']} lists"))
                for name, optional in lists.list_files(split["format"])]

    def needed(self, p: dict, manual_dir: Path) -> list[Source]:
        """The sources this configuration reads: the required ones, optional ones that are placed, and its lists."""
        own = [s for s in self.sources if not s.optional or (manual_dir / s.name).is_file()]
        return own + [s for s in self.list_sources(p["split"]) if not s.optional or (manual_dir / s.name).is_file()]

    def gather(self, p: dict, *, download_root=DOWNLOAD_ROOT, manual_root=MANUAL_ROOT,
               progress: bool = True) -> dict[str, Path]:
        """{source name: local path}. Files placed by hand are checked first: if any is missing, one line names
        every missing file and the folder to put them in, before anything is downloaded."""
        manual_dir, cache = Path(manual_root) / self.name, Path(download_root) / self.name
        wanted = self.needed(p, manual_dir)
        absent = [s for s in wanted if not (manual_dir / s.name).is_file()
                  and not (s.url and (cache / s.name).is_file())]
        if any(s.url is None for s in absent):
            raise HashbenchError(self._missing(absent, manual_dir))
        files, failed = {}, []
        for s in wanted:
            if s.url is None:
                files[s.name] = manual_dir / s.name
                continue
            try:
                files[s.name] = fetch(s.url, cache, s.md5, s.bytes, progress, filename=s.name,
                                      manual_dir=manual_dir)
            except HashbenchError:
                if s not in absent:
                    raise  # a placed or cached copy that fails its checksum: fetch's own line
                failed.append(s)
        if failed:
            raise HashbenchError(self._missing(failed, manual_dir, "could not be downloaded"))
        for s in wanted:
            self._check_copy(s, files[s.name])
        return files

    def _missing(self, absent: list[Source], manual_dir: Path, why: str = "not found") -> str:
        names = ", ".join(s.name for s in absent)
        groups: dict[str, list[str]] = {}
        for s in absent:
            if s.where:
                groups.setdefault(s.where, []).append(s.name.split("/")[-1])
        hints = "; ".join(f"{', '.join(files)}: {where}" for where, files in groups.items())
        return (f"{self.name}: {names} {why}; put {'it' if len(absent) == 1 else 'them'} in {manual_dir}/"
                + (f" ({hints})" if hints else "") + " and rerun the download stage")

    @staticmethod
    def _check_copy(s: Source, path: Path) -> None:
        size = path.stat().st_size
        if s.max_bytes is not None and size > s.max_bytes:
            raise HashbenchError(f"{path}: {size} bytes, over the {s.max_bytes}-byte cap for {s.name} (no checksum is "
                                 f"published); place the official file")
        if s.git_blob is not None and (actual := git_blob_id(path)) != s.git_blob:
            raise HashbenchError(f"{path}: git blob id {actual} differs from the committed {s.git_blob}; replace it "
                                 f"with the official {s.name}")

    def records(self, files: dict[str, Path], split: dict) -> dict:
        """What was read, for the manifest: bytes and md5 per file (recorded where none is published)."""
        known = {s.name: s for s in self.sources + tuple(self.list_sources(split))}
        out = {}
        for name, path in files.items():
            s = known.get(name, Source(name))
            checked = "md5" if s.md5 else (f"git blob {s.git_blob}" if s.git_blob else "none published")
            out[name] = {"bytes": path.stat().st_size, "md5": s.md5 or file_md5(path), "checked": checked}
        return out

    # ---------------------------------------------------------------------------------------------- conversion
    @abc.abstractmethod
    def convert(self, files: dict[str, Path], p: dict, folder: Path) -> dict:
        """Read the fetched or placed `files` with the validated block `p` and write the dataset to `folder`
        (``self.write``); returns the manifest."""

    def source_text(self, note: str = "") -> str:
        return f"{self.title} ({self.page}); {self.license}" + (f"; {note}" if note else "")

    def write(self, folder, p: dict, files: dict[str, Path], *, note: str = "", item_names=None, **kw) -> dict:
        """write_dataset with the source record; with the lists protocol, the lists matched to the items (by
        `item_names`, default the base names of `image_paths`) are stored as ``list_*`` arrays."""
        extra_arrays = dict(kw.pop("extra_arrays", None) or {})
        extra_files = dict(kw.pop("extra_files", None) or {})
        extra_manifest = {"source": self.source_text(note), "sources": self.records(files, p["split"]),
                          **(kw.pop("extra_manifest", None) or {})}
        split = p["split"]
        if split["protocol"] == "lists":
            names = item_names if item_names is not None else \
                [posixpath.basename(x) for x in kw.get("image_paths") or []]
            arrays, summary, more_files = self.read_lists(split, files, names, kw["labels"])
            extra_arrays.update(arrays)
            extra_files.update(more_files)
            extra_manifest["lists"] = {"format": split["format"], **summary}
        return write_dataset(folder, name=self.name, extra_arrays=extra_arrays, extra_files=extra_files,
                             extra_manifest=extra_manifest, **kw)

    def read_lists(self, split: dict, files: dict[str, Path], names, labels) -> tuple[dict, dict, dict]:
        """(arrays, summary, extra JSON files) of the placed lists; WSDHQ's release overrides this."""
        where = f"{self.name}.split"
        parts = lists.read_parts(split, files, where)
        arrays, summary = lists.resolve(parts, names, labels, split["check_labels"], where)
        return arrays, summary, {}


def prepare(spec: DatasetSpec, block, folder, *, download_root=DOWNLOAD_ROOT, manual_root=MANUAL_ROOT,
            progress: bool = True) -> dict:
    """The download stage for one dataset: validate, gather the sources, convert into `folder`; the manifest."""
    p = spec.validate(block)
    if spec.embedded:
        return spec.convert({}, p, Path(folder))
    files = spec.gather(p, download_root=download_root, manual_root=manual_root, progress=progress)
    return spec.convert(files, p, Path(folder))
