"""`meeting-elt check`: the config it reads is the config `run` reads, for every source.

The Meetric workspace source takes one account (`account_id` + `api_key`) or several
(`accounts`); `check` must find them wherever `run` does: env vars or `.dlt/*.toml`.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines import registry
from pipelines.cli import main
from simulators.meetric import MeetricSimulator

TABLES = ("action_items", "conversations", "department_managers", "insight_summary", "insight_trends",
          "insights", "team_managers", "users")


def env_single(sim: MeetricSimulator, api_key: str | None = None) -> dict[str, str]:
    config = sim.source_config()
    return {"SOURCES__MEETRIC__BASE_URL": config["base_url"],
            "SOURCES__MEETRIC__ACCOUNT_ID": config["account_id"],
            "SOURCES__MEETRIC__API_KEY": api_key or config["api_key"],
            "SOURCES__MEETRIC__HTTP__REQUESTS_PER_MINUTE": "0"}


def access_lines(output: str) -> dict[str, str]:
    """{table: the rest of its line} from the check's table."""
    found = {}
    for line in output.splitlines():
        words = line.split(maxsplit=1)
        if len(words) == 2 and words[0] in TABLES:
            found[words[0]] = words[1].strip()
    return found


def check_in_subprocess(cwd: Path) -> subprocess.CompletedProcess:
    """`meeting-elt check meetric` as a user runs it, in `cwd` (whose .dlt/ holds the config)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "check", "meetric"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def write_dlt(tmp_path: Path, config: str, secrets: str) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(config)
    (tmp_path / ".dlt" / "secrets.toml").write_text(secrets)


def test_check_meetric_reads_one_account_from_env_vars(start_sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sim = start_sim(MeetricSimulator, conversations=5, rate_limit=None)
    result = CliRunner().invoke(main, ["check", "meetric"], env=env_single(sim))
    assert result.exit_code == 0, result.output
    assert "meetric: credentials ok" in result.output
    assert access_lines(result.output) == dict.fromkeys(TABLES, "ok")
    assert sim.requests(pattern=r"/users$") and sim.requests(pattern=r"/insights/trends$")


def test_check_meetric_checks_every_account_of_an_accounts_list_from_env_vars(start_sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sim = start_sim(MeetricSimulator, accounts=2, conversations=5, rate_limit=None)
    first, second = sim.account_ids
    # the second account's key may not read insights: only checking that account shows it
    limited = sim.add_key({second}, write=False, denied={"/insights"})
    accounts = [{"account_id": first, "api_key": sim.accounts[first].key},
                {"account_id": second, "api_key": limited}]
    env = {"SOURCES__MEETRIC__BASE_URL": sim.source_config()["base_url"],
           "SOURCES__MEETRIC__ACCOUNTS": json.dumps(accounts),
           "SOURCES__MEETRIC__HTTP__REQUESTS_PER_MINUTE": "0"}
    result = CliRunner().invoke(main, ["check", "meetric"], env=env)
    assert result.exit_code == 0, result.output
    lines = access_lines(result.output)
    assert lines["conversations"] == "ok" and lines["users"] == "ok"
    for table in ("insights", "insight_trends", "insight_summary"):
        assert lines[table].startswith("no") and second in lines[table], result.output
    assert limited not in result.output


def test_check_meetric_reads_one_account_from_dlt_toml(start_sim, tmp_path):
    sim = start_sim(MeetricSimulator, conversations=5, rate_limit=None)
    config = sim.source_config()
    write_dlt(tmp_path,
              f'[sources.meetric]\nbase_url = "{config["base_url"]}"\naccount_id = "{config["account_id"]}"\n'
              "[sources.meetric.http]\nrequests_per_minute = 0\n",
              f'[sources.meetric]\napi_key = "{config["api_key"]}"\n')
    done = check_in_subprocess(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "meetric: credentials ok" in done.stdout
    assert access_lines(done.stdout) == dict.fromkeys(TABLES, "ok")


def test_check_meetric_reads_an_accounts_list_from_dlt_secrets_toml(start_sim, tmp_path):
    sim = start_sim(MeetricSimulator, accounts=2, conversations=5, rate_limit=None)
    first, second = sim.account_ids
    limited = sim.add_key({second}, write=False, denied={"/action-items"})
    write_dlt(tmp_path, f'[sources.meetric]\nbase_url = "{sim.source_config()["base_url"]}"\n',
              f'[[sources.meetric.accounts]]\naccount_id = "{first}"\napi_key = "{sim.accounts[first].key}"\n\n'
              f'[[sources.meetric.accounts]]\naccount_id = "{second}"\napi_key = "{limited}"\n')
    done = check_in_subprocess(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = access_lines(done.stdout)
    assert lines["action_items"].startswith("no") and second in lines["action_items"], done.stdout
    assert all(lines[t] == "ok" for t in TABLES if t != "action_items"), done.stdout
    assert limited not in done.stdout + done.stderr


def test_check_meetric_with_a_wrong_key_fails_naming_the_account_not_the_key(start_sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sim = start_sim(MeetricSimulator, conversations=5, rate_limit=None)
    wrong = "mk_live_0123456789abcdef0123456789abcdef"
    result = CliRunner().invoke(main, ["check", "meetric"], env=env_single(sim, api_key=wrong))
    assert result.exit_code == 1
    assert "check failed" in result.output and "authentication failed" in result.output
    assert sim.account_ids[0] in result.output
    assert wrong not in result.output and "0123456789abcdef" not in result.output
    assert sim.accounts[sim.account_ids[0]].key not in result.output


def test_check_refuses_a_mistyped_key_as_run_does(start_sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sim = start_sim(MeetricSimulator, conversations=5, rate_limit=None)
    config = sim.source_config()
    env = {**env_single(sim), "SOURCES__MEETRIC__API_KEY": "", "SOURCES__MEETRIC__APIKEY": config["api_key"]}
    result = CliRunner().invoke(main, ["check", "meetric"], env=env)
    assert result.exit_code == 1
    assert "did you mean 'api_key'" in result.output
    assert config["api_key"] not in result.output
    assert sim.log == []


@pytest.mark.parametrize("name", sorted(registry.SOURCES))
def test_every_check_takes_only_keys_its_source_takes(name):
    # check gets its arguments from the source's resolved config: a key the source does not
    # take could never be set, and a required one would fail every check
    entry = registry.get(name)
    source_keys = set(inspect.signature(entry.source()).parameters)
    check_params = inspect.signature(entry.check()).parameters
    assert set(check_params) <= source_keys


def test_check_meetric_with_a_key_that_may_not_read_users_lists_the_tables_it_still_allows(
        start_sim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sim = start_sim(MeetricSimulator, conversations=5, rate_limit=None)
    limited = sim.add_key(set(sim.account_ids), write=False, denied={"/users"})
    result = CliRunner().invoke(main, ["check", "meetric"], env=env_single(sim, api_key=limited))
    assert result.exit_code == 0, result.output
    lines = access_lines(result.output)
    for table in ("users", "team_managers", "department_managers"):  # manager ids come from users
        assert lines[table].startswith("no") and "insufficient" in lines[table]
    assert all(lines[t] == "ok" for t in TABLES if t not in ("users", "team_managers", "department_managers"))
