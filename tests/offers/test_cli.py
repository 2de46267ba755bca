"""``floorwalker-aggregator offers --replay``: one JSON line per offer, seed-001 log lines with --log."""

from __future__ import annotations

import json
import subprocess
import sys

from aggregator.cli import main
from tests.offers.helpers import COUPONS_FILE, RULES_FILE

NS = 1_000_000_000
T0 = 1_700_222_069 * NS


def row(t_s: int, user: str, product: str, category: str, gender="F", age=30) -> str:
    return json.dumps({"timestamp": T0 + t_s * NS, "userId": user, "productId": product, "category": category,
                       "gender": gender, "age": age})


STREAM = "\n".join([
    row(0, "sad-music-boxing", "VD55129406", "clothing"),
    row(1, "bob", "P1", "clothing", "M", 40),
    row(3, "sad-music-boxing", "VD55147564", "shoes"),
    row(3, "sad-music-boxing", "VD55147564", "shoes"),  # page refresh
    row(4, "bob", "P2", "shoes", "M", 40),
    row(5, "anon", "P1", "clothing", None, None),
    row(6, "sad-music-boxing", "VD55177927", "clothing"),
    "not json",
    row(7, "bob", "P3", "clothing", "M", 40),
    "",
]) + "\n"


def test_replay_prints_one_json_line_per_offer(tmp_path, capsys):
    events = tmp_path / "clicks.jsonl"
    events.write_text(STREAM)
    assert main(["offers", "--rules", str(RULES_FILE), "--replay", str(events)]) == 0
    out, err = capsys.readouterr()
    offers = [json.loads(line) for line in out.splitlines()]
    assert offers == [{"user": "sad-music-boxing", "offer": "offer2", "ts": T0 + 6 * NS, "rule": "retail-demo"},
                      {"user": "bob", "offer": "offer1", "ts": T0 + 7 * NS, "rule": "retail-demo"}]
    summary = json.loads(err.strip().splitlines()[-1])["summary"]
    assert summary["bad_lines"] == 1 and summary["ignored"] == 1 and summary["refresh"] == 1
    assert "line 8: skipped" in err


def test_replay_with_log_prints_seed_001_lines(tmp_path, capsys):
    events = tmp_path / "clicks.jsonl"
    events.write_text(STREAM)
    assert main(["offers", "--replay", str(events), "--log", "--coupons", str(COUPONS_FILE)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "sad-music-boxing" in line]
    assert lines[0] == ("2023-11-17 11:54:29: [User sad-music-boxing entered state clothes_visited]"
                        "[Event: clicked VD55129406][Category: clothing]")
    assert lines[2].endswith("[User sad-music-boxing entered state offer]"
                             "[Event: clicked VD55177927][Category: clothing]")
    assert lines[3] == "2023-11-17 11:54:35: [User sad-music-boxing triggered offer offer2]"
    assert json.loads(lines[4])["coupon"] == 97  # Women, just_discount preferred


def test_replay_reads_stdin_and_a_bad_rules_file_exits_with_config_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "aggregator.cli", "offers", "--replay", "-"], input=STREAM,
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 2
    bad = tmp_path / "offers.toml"
    bad.write_text("[[rules]]\nname = 'x'\n")
    proc = subprocess.run([sys.executable, "-m", "aggregator.cli", "offers", "--rules", str(bad), "--replay", "-"],
                          input="", capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 78 and "rules[0].steps" in proc.stderr
