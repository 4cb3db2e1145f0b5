"""Speech corpora as lists of ``Utterance`` records (audio path, transcript or word, speaker, duration).

Four layouts, each read by one function (``read_corpus`` picks one for a path):

- a folder of audio files whose names carry the label (``read_labelled_files``; FSDD's
  ``{digit}_{speaker}_{index}.wav`` by default, any regex with a ``label`` group otherwise);
- one subfolder per word (``read_word_folders``);
- a manifest (``read_manifest``): CSV or TSV with a header, or JSON lines, one row per recording:
  the audio path (relative to the manifest), the transcript, optionally duration and speaker;
- the LibriSpeech layout (``read_librispeech``): ``SPEAKER-CHAPTER.trans.txt`` files of
  ``SPEAKER-CHAPTER-UTT transcript`` lines beside the FLAC files.

Durations come from the manifest where given; elsewhere they are None until ``with_durations``
reads them from the files' headers (``read_audio`` checks each file when it is read). Every bad input is a one-line ValueError naming the file.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from rnnkit.data.tables import csv_records, json_records, read_text

from .audio import SUPPORTED

FSDD_PATTERN = r"(?P<label>\d+)_(?P<speaker>[a-z]+)_(?P<index>\d+)\.wav"
PATH_FIELDS = ("audio", "audio_filepath", "path", "wav", "file", "filename")       # NeMo: audio_filepath
TEXT_FIELDS = ("text", "transcript", "sentence", "label", "words")                # Common Voice: sentence
SPEAKER_FIELDS = ("speaker", "speaker_id", "client_id")
SHOWN = 3                                                                         # missing files named


@dataclass
class Utterance:
    """One recording: its audio file, its transcript (or word label), its speaker and duration in
    seconds (None where unknown)."""

    path: Path
    text: str
    speaker: Optional[str] = None
    duration: Optional[float] = None


def audio_files(folder: Path) -> List[Path]:
    """The audio files (``audio.SUPPORTED`` suffixes) under ``folder``, at any depth, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUPPORTED and p.is_file())


def _folder(path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path} does not exist or is not a folder: give the corpus folder")
    return path


# --- labels in file names ----------------------------------------------------------------------------

def read_labelled_files(folder, pattern: str = FSDD_PATTERN) -> List[Utterance]:
    """Recordings whose file names carry the label: ``pattern`` must match a whole file name and
    have a ``label`` group (and may have ``speaker``). Files it does not match are skipped (warned).

    Raises:
        ValueError: no audio file, a pattern without a ``label`` group, or one that matches no
            file name (named, with an example file name).
    """
    folder = _folder(folder)
    regex = _compile(pattern)
    files = audio_files(folder)
    if not files:
        raise ValueError(f"{folder} holds no audio files ({', '.join(SUPPORTED)}): give a folder of recordings")
    out = []
    for path in files:
        match = regex.fullmatch(path.name)
        if match:
            speaker = match.groupdict().get("speaker")
            out.append(Utterance(path, match.group("label"), speaker))
    if not out:
        raise ValueError(f"the label pattern {pattern!r} matches none of the {len(files):,} file names in {folder} "
                         f"(for example {files[0].name!r}): give --pattern a regex with a (?P<label>...) group")
    if len(out) < len(files):
        skipped = [p.name for p in files if not regex.fullmatch(p.name)]
        warnings.warn(f"{folder}: skipped {len(skipped):,} of {len(files):,} audio files whose names do not match "
                      f"{pattern!r} (for example {skipped[0]!r})", stacklevel=2)
    return out


def _compile(pattern: str) -> "re.Pattern":
    try:
        regex = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"the label pattern {pattern!r} is not a valid regular expression ({error})") from None
    if "label" not in regex.groupindex:
        raise ValueError(f"the label pattern {pattern!r} has no (?P<label>...) group: name the part of the file "
                         f"name that is the label")
    return regex


def fsdd_split(utterances: Sequence[Utterance], pattern: str = FSDD_PATTERN,
               test_indices: range = range(5)) -> Tuple[List[Utterance], List[Utterance]]:
    """FSDD's official split: ``(train, test)``, the test set being recordings 0-4 of each speaker
    and digit (``index`` group of the pattern), the training set 5-49."""
    regex = _compile(pattern)
    if "index" not in regex.groupindex:
        raise ValueError(f"the pattern {pattern!r} has no (?P<index>...) group: FSDD's split needs each "
                         f"recording's index")
    train, test = [], []
    for u in utterances:
        match = regex.fullmatch(Path(u.path).name)
        if not match:
            raise ValueError(f"{u.path}: its name does not match {pattern!r}, so its index (and split) is unknown")
        (test if int(match.group("index")) in test_indices else train).append(u)
    return train, test


# --- one subfolder per word --------------------------------------------------------------------------

def read_word_folders(folder) -> List[Utterance]:
    """Recordings in one subfolder per word (Speech Commands' layout): the subfolder's name is the
    label; audio at any depth inside it. Subfolders starting with ``_`` or ``.`` (Speech Commands'
    ``_background_noise_``) are left out."""
    folder = _folder(folder)
    out = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        out += [Utterance(path, sub.name) for path in audio_files(sub)]
    if not out:
        raise ValueError(f"{folder} has no subfolder holding audio files: give one subfolder per word, each with "
                         f"its recordings")
    return out


# --- manifests ---------------------------------------------------------------------------------------

def read_manifest(path, *, path_field: Optional[str] = None, text_field: Optional[str] = None,
                  encoding: str = "utf-8") -> List[Utterance]:
    """A manifest: JSON lines (``.jsonl``/``.json``/``.ndjson``), TSV (``.tsv``) or CSV (others),
    CSV/TSV with a header. Fields by name: the audio (default: the first of ``PATH_FIELDS``
    present), the transcript (the first of ``TEXT_FIELDS``), optional ``duration`` (seconds) and
    speaker (``SPEAKER_FIELDS``). Relative audio paths are relative to the manifest's folder.

    Raises:
        ValueError: a missing field, a bad duration, no rows, or rows pointing to missing audio
            files (counted, the first few named).
    """
    path = Path(path)
    text = read_text(path, encoding)
    rows = list(json_records(path, text) if path.suffix.lower() in (".jsonl", ".json", ".ndjson")
                else _table_rows(path, text, "\t" if path.suffix.lower() == ".tsv" else ","))
    if not rows:
        raise ValueError(f"{path} has no rows: give one row per recording")
    keys = set().union(*(row for _, row in rows))
    audio_key = _field(path, keys, path_field, PATH_FIELDS, "audio path", "--path-field")
    text_key = _field(path, keys, text_field, TEXT_FIELDS, "transcript", "--text-field")
    speaker_key = next((k for k in SPEAKER_FIELDS if k in keys), None)
    out, missing = [], []
    for line, row in rows:
        where = f"{path}, line {line}"
        audio, transcript = row.get(audio_key), row.get(text_key)
        if not isinstance(audio, str) or not audio.strip():
            raise ValueError(f"{where}: no audio path in {audio_key!r}")
        if transcript is not None and not isinstance(transcript, (str, int)):
            raise ValueError(f"{where}: the transcript {text_key!r} is a {type(transcript).__name__}, not a string")
        file = Path(audio.strip())
        file = file if file.is_absolute() else path.parent / file
        if not file.is_file():
            missing.append((line, audio.strip()))
            continue
        out.append(Utterance(file, "" if transcript is None else str(transcript).strip(),
                             _text(row.get(speaker_key)) if speaker_key else None, _duration(where, row.get("duration"))))
    if missing:
        _missing(path, missing, len(rows))
    return out


def _table_rows(path: Path, text: str, delimiter: str):
    records = csv_records(path, text, delimiter)
    first = next(records, None)
    if first is None:
        return
    names = [name.strip() for name in first[1]]
    for line, record in records:
        if len(record) != len(names):
            raise ValueError(f"{path}, line {line}: {len(record)} fields but the header has {len(names)} "
                             f"(is the delimiter {delimiter!r} right?)")
        yield line, dict(zip(names, record))


def _field(path: Path, keys: set, given: Optional[str], candidates: tuple, what: str, flag: str) -> str:
    if given is not None:
        if given not in keys:
            raise ValueError(f"{path} has no field {given!r}; its fields are: {', '.join(map(repr, sorted(keys)))}")
        return given
    found = next((k for k in candidates if k in keys), None)
    if found is None:
        raise ValueError(f"{path}: no {what} field ({' or '.join(map(repr, candidates))}); its fields are "
                         f"{', '.join(map(repr, sorted(keys)))}: rename one or give {flag}")
    return found


def _text(value) -> Optional[str]:
    return None if value is None or str(value).strip() == "" else str(value).strip()


def _duration(where: str, value) -> Optional[float]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: the duration {value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise ValueError(f"{where}: the duration {value!r} must be a positive number of seconds")
    return seconds


def _missing(where: Path, missing: List[Tuple[int, str]], total: int) -> None:
    shown = ", ".join(f"{name} (line {line})" for line, name in missing[:SHOWN])
    more = f" and {len(missing) - SHOWN:,} more" if len(missing) > SHOWN else ""
    raise ValueError(f"{where}: {len(missing):,} of {total:,} rows point to missing audio files: {shown}{more}; "
                     f"paths are relative to the manifest's folder")


# --- LibriSpeech -------------------------------------------------------------------------------------

def read_librispeech(folder, encoding: str = "utf-8") -> List[Utterance]:
    """The LibriSpeech layout: every ``*.trans.txt`` under ``folder`` holds ``ID transcript`` lines,
    ``ID`` = ``SPEAKER-CHAPTER-UTTERANCE``, its audio ``ID.flac`` beside it; the speaker is the ID's
    first part.

    Raises:
        ValueError: no ``*.trans.txt``, a line without a transcript, or IDs without their audio
            (counted, the first few named).
    """
    folder = _folder(folder)
    transcripts = sorted(folder.rglob("*.trans.txt"))
    if not transcripts:
        raise ValueError(f"{folder} holds no *.trans.txt files: the LibriSpeech layout has "
                         f"SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt beside the .flac files")
    out, missing, total = [], [], 0
    for trans in transcripts:
        for line, content in enumerate(read_text(trans, encoding).split("\n"), 1):
            if not content.strip():
                continue
            total += 1
            ident, _, words = content.strip().partition(" ")
            if not words.strip():
                raise ValueError(f"{trans}, line {line}: no transcript after the ID {ident!r} (lines are "
                                 f"'SPEAKER-CHAPTER-UTT TRANSCRIPT')")
            audio = next((trans.parent / (ident + s) for s in (".flac", ".wav") if (trans.parent / (ident + s)).is_file()),
                         None)
            if audio is None:
                missing.append((line, f"{trans.parent / ident}.flac"))
                continue
            out.append(Utterance(audio, words.strip(), ident.split("-")[0]))
    if missing:
        _missing(folder, missing, total)
    return out


def with_durations(utterances: Sequence[Utterance]) -> List[Utterance]:
    """The utterances with every unknown duration read from its file's header (soundfile)."""
    import soundfile as sf

    out = []
    for u in utterances:
        if u.duration is None:
            try:
                info = sf.info(str(u.path))
            except (sf.LibsndfileError, RuntimeError) as error:
                reason = str(error).split(": ", 1)[-1].strip()
                raise ValueError(f"{u.path} is not audio soundfile can decode ({reason}): convert it to WAV or "
                                 f"FLAC") from None
            u = Utterance(u.path, u.text, u.speaker, info.frames / info.samplerate)
        out.append(u)
    return out


# --- any of them -------------------------------------------------------------------------------------

def read_corpus(data, pattern: Optional[str] = None) -> List[Utterance]:
    """A corpus in any of the four layouts: a file is a manifest; a folder with ``*.trans.txt`` is
    LibriSpeech; a folder with no audio of its own but two or more subfolders holding audio (and no
    pattern given) has one subfolder per word; otherwise the file names carry the labels (``pattern``, FSDD's by default)."""
    data = Path(data)
    if data.is_file():
        return read_manifest(data)
    folder = _folder(data)
    if pattern is None and next(folder.rglob("*.trans.txt"), None) is not None:
        return read_librispeech(folder)
    direct = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED]
    holding = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
               and next(iter(audio_files(p)), None) is not None]
    if pattern is None and not direct and len(holding) >= 2:            # FSDD's repository has one: recordings/
        return read_word_folders(folder)
    return read_labelled_files(folder, FSDD_PATTERN if pattern is None else pattern)
