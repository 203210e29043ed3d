"""Unit checks behind the runc parity items of issue 10 (the integration side runs runc too)."""
from __future__ import annotations

import os

from runtime.stages.process import env_value, passwd_home


def test_passwd_home_matches_the_first_entry_of_the_uid(tmp_path):
    p = tmp_path / "passwd"
    p.write_text("root:x:0:0:root:/root:/bin/sh\n"
                 "  web:x:33:33::/var/www:/bin/false  \n"      # blanks around a line: trimmed
                 "bad:x:abc:0::/bad:/bin/sh\n"                  # no number: matches no uid
                 "short:x:7\n"                                  # too few fields: skipped
                 "dup:x:33:33::/second:/bin/sh\n"
                 "nohome:x:44:44:::/bin/sh\n\n")
    assert passwd_home(0, str(p)) == "/root"
    assert passwd_home(33, str(p)) == "/var/www"   # the first of two entries
    assert passwd_home(44, str(p)) == "/"          # an empty home field
    assert passwd_home(7, str(p)) == "/"
    assert passwd_home(1000, str(p)) == "/"
    assert passwd_home(0, str(tmp_path / "missing")) == "/"
    os.mkfifo(tmp_path / "fifo")
    assert passwd_home(0, str(tmp_path / "fifo")) == "/"  # never blocks on a FIFO
    assert passwd_home(0, str(tmp_path)) == "/"           # a directory


def test_env_value_is_the_last_entry():
    assert env_value(["HOME=/a", "X=1", "HOME="], "HOME") == ""
    assert env_value(["HOME=", "HOME=/b"], "HOME") == "/b"
    assert env_value(["HOMEX=/a", "HOME"], "HOME") == ""
