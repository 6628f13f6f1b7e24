"""The example notebooks a user gets once in ~/examples (job/examples.py)."""

from aifactory_workbench.job.examples import MARKER, copy_examples


def make_source(tmp_path):
    source = tmp_path / "site-examples"
    (source / "x.egg-info").mkdir(parents=True)
    (source / "01_intro.ipynb").write_text("{}")
    (source / "README.md").write_text("# Examples\\n")
    return source


def test_a_first_start_copies_the_examples_and_a_later_one_keeps_the_users_changes(tmp_path):
    source, home = make_source(tmp_path), tmp_path / "home"
    home.mkdir()
    assert "copied" in copy_examples(source, home)
    assert sorted(p.name for p in (home / "examples").iterdir()) == ["01_intro.ipynb", "README.md"]
    (home / "examples" / "01_intro.ipynb").write_text('{"mine": 1}')
    (source / "01_intro.ipynb").write_text('{"newer": 1}')
    assert "left as they are" in copy_examples(source, home)
    assert (home / "examples" / "01_intro.ipynb").read_text() == '{"mine": 1}'


def test_examples_the_user_deleted_do_not_come_back_and_a_folder_of_theirs_is_never_touched(tmp_path):
    source, home = make_source(tmp_path), tmp_path / "home"
    home.mkdir()
    copy_examples(source, home)
    for f in (home / "examples").iterdir():
        f.unlink()
    (home / "examples").rmdir()
    copy_examples(source, home)
    assert not (home / "examples").exists()
    other = tmp_path / "other"
    (other / "examples").mkdir(parents=True)
    (other / "examples" / "theirs.txt").write_text("keep")
    assert "exists already" in copy_examples(source, other)
    assert [p.name for p in (other / "examples").iterdir()] == ["theirs.txt"]
    assert (other / MARKER).exists()
