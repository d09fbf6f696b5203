"""import-legacy: the seed's Perl-style failover_config.txt, read without running Perl."""

import contextlib
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failoverd.config.errors import LegacyError
from failoverd.config.legacy import SECRET_PATH, import_legacy
from failoverd.config.load import load_node_config
from failoverd.config.schema import NodeConfig
from failoverd.core.types import Preference

SEED = (Path(__file__).parent / "data" / "failover_config.txt").read_text()


def imported(text: str, role: Preference = Preference.STANDBY) -> dict[str, Any]:
    data = tomllib.loads(import_legacy(text, role).toml_text)
    NodeConfig.model_validate(data)  # valid apart from the secret file, which must exist
    return data


def config(body: str, before: str = "") -> str:
    """A failover_config.txt around `body` with the keys every import needs."""
    return (
        f"{before}sub CONFIG {{\n(\n"
        "REMOTE_POP3_HOST => 'cfg1.example.com',\n"
        "SLAVE_HOST => 'cfg2.example.com',\n"
        "MONITOR_PORT => 7890,\n"
        "MONITOR_PORT_SLAVE => 7891,\n"
        f"{body}\n)\n}}\n1;\n"
    )


def error(text: str) -> LegacyError:
    with pytest.raises(LegacyError) as info:
        import_legacy(text, Preference.STANDBY, source="old.txt")
    assert "\n" not in str(info.value)
    return info.value


# -- the seed's own file --------------------------------------------------------------


def test_seed_file_as_standby() -> None:
    data = imported(SEED, Preference.STANDBY)
    assert data["node"] == {
        "name": "talisker.access.ch",
        "preference": "standby",
        "listen": "0.0.0.0:7891",
    }
    assert data["peer"] == {"name": "cp-isp.access.ch", "addresses": ["cp-isp.access.ch:7890"]}
    assert data["cluster"] == {"safety": "cooperative", "secret_file": SECRET_PATH}
    assert data["scripts"] == {
        "startup": ["./scripts/foo2.sh", "./scripts/bar.sh"],
        "shutdown": [
            "./scripts/shutdown_1.sh >/tmp/foo.log 2>/tmp/foo.err",
            "./scripts/shutdown_2.sh",
        ],
    }
    assert data["check"] == [
        {
            "name": "pop3",
            "type": "pop3",
            "scope": "remote",
            "host": "cp-isp.access.ch",
            "port": 110,
            "timeout": "60s",
        }
    ]


def test_seed_file_as_primary() -> None:
    data = imported(SEED, Preference.PRIMARY)
    assert data["node"] == {
        "name": "cp-isp.access.ch",
        "preference": "primary",
        "listen": "0.0.0.0:7890",
    }
    assert data["peer"] == {
        "name": "talisker.access.ch",
        "addresses": ["talisker.access.ch:7891"],
    }
    [check] = data["check"]
    assert (check["scope"], check["host"], check["port"]) == ("local", "cp-isp.access.ch", 110)
    assert data["scripts"]["shutdown"][0] == "./scripts/shutdown_1.sh >/tmp/foo.log 2>/tmp/foo.err"


def test_seed_file_comments_explain_the_choices() -> None:
    standby = import_legacy(SEED, Preference.STANDBY).toml_text
    primary = import_legacy(SEED, Preference.PRIMARY).toml_text
    assert '(VERSION "0.80.01")' in standby
    assert "head -c 64 /dev/urandom > /etc/failoverd/secret && chmod 600" in standby
    assert "UNSAFE under a network partition" in standby
    assert 'safety = "witness"' in standby  # the recommendation
    assert "scope local" in primary and "The standby's file keeps a remote check" in primary


def test_rlogin_password_is_dropped_with_a_warning_that_does_not_show_it() -> None:
    result = import_legacy(SEED, Preference.STANDBY, source="failover_config.txt")
    [warning] = result.warnings
    assert warning.line == 12  # RLOGIN_USER
    assert "RLOGIN_USER and RLOGIN_PASS dropped" in warning.message
    for shown in (result.toml_text, str(warning)):
        assert "Xfoo" not in shown
        assert "retoh" not in shown
        assert "RLOGIN_PASS =" not in shown


def test_seed_import_loads_once_the_secret_file_exists(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 64)
    secret.chmod(0o600)
    for role in Preference:
        text = import_legacy(SEED, role).toml_text.replace(SECRET_PATH, str(secret))
        path = tmp_path / f"{role}.toml"
        path.write_text(text)
        cfg = load_node_config(path, on_warning=lambda w: None)
        assert cfg.node.preference is role
        assert cfg.check[0].timeout == 60.0


# -- the Perl subset -------------------------------------------------------------------


def test_return_double_quotes_escapes_comments_and_trailing_commas() -> None:
    text = (
        "# head comment, with a ' quote\n"
        "sub CONFIG {\n"
        "  return (\n"
        '    "REMOTE_POP3_HOST", "cfg1.example.com",   # a string key, a comma\n'
        "    SLAVE_HOST => 'cfg2.example.com',,\n"
        "    MONITOR_PORT => '7890',  # a numeric string, as Perl allows\n"
        "    MONITOR_PORT_SLAVE => 7_891,\n"
        "    REMOTE_POP3_TIMEOUT => 0.5,\n"
        '    STARTUP_SCRIPTS => "./a.sh \\"quoted\\" #not-a-comment,\\t./b.sh\\n" . \n'
        "                       '   ,./c.sh \\'x\\' \\\\ \\n',\n"
        "  );\n"
        "}\n"
    )
    data = imported(text)
    assert data["node"]["listen"] == "0.0.0.0:7891"
    assert data["peer"]["addresses"] == ["cfg1.example.com:7890"]
    assert data["check"][0]["timeout"] == "500ms"
    assert data["scripts"]["startup"] == [
        './a.sh "quoted" #not-a-comment',
        "./b.sh",
        "./c.sh 'x' \\ \\n",  # single quotes: only \\ and \' are escapes
    ]


def test_multiline_string_keeps_its_lines_and_later_line_numbers_stay_right() -> None:
    text = config("STARTUP_SCRIPTS => './a.sh,\n./b.sh',\nBOGUS => 1,")
    result = import_legacy(text, Preference.STANDBY)
    assert tomllib.loads(result.toml_text)["scripts"]["startup"] == ["./a.sh", "./b.sh"]
    [warning] = result.warnings
    assert warning.line == 9
    assert "BOGUS is not imported" in warning.message


def test_empty_script_items_are_dropped_and_missing_scripts_leave_no_table() -> None:
    data = imported(config("SHUTDOWN_SCRIPTS => ' ./a.sh , ,, ./b.sh ,',"))
    assert data["scripts"] == {"startup": [], "shutdown": ["./a.sh", "./b.sh"]}
    assert "scripts" not in imported(config(""))


def test_ipv6_hosts_are_bracketed() -> None:
    text = config("").replace("'cfg1.example.com'", "'2001:db8::1'")
    assert imported(text)["peer"]["addresses"] == ["[2001:db8::1]:7890"]


def test_unknown_and_repeated_keys_are_warnings_naming_them() -> None:
    text = config("FOO => 1,\nMONITOR_PORT => 7000,\nBAR => 'secret-ish'")
    result = import_legacy(text, Preference.STANDBY)
    messages = {w.line: w.message for w in result.warnings}
    assert "FOO is not imported" in messages[7]
    assert "BAR is not imported" in messages[9]
    assert "MONITOR_PORT is given again later" in messages[5]  # the overridden one
    assert "secret-ish" not in "".join(messages.values())
    assert tomllib.loads(result.toml_text)["peer"]["addresses"] == ["cfg1.example.com:7000"]


# -- errors, with their line -----------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "expect"),
    [
        ("VERSION => $version,", 7, "$version is a Perl variable"),
        ("VERSION => @list,", 7, "@list is a Perl variable"),
        ("VERSION => %h,", 7, "%h is a Perl variable"),
        ('\nVERSION => "v$x",', 8, "interpolation"),
        ('VERSION => "me@example.com",', 7, "interpolation"),
        ("VERSION => version(),", 7, "version(...) is a function call"),
        ("VERSION => lc 'X',", 7, "bareword lc"),
        ("VERSION => 'a' . $b,", 7, "expected a string after the . (concatenation)"),
        ("VERSION => 'a' 'b',", 7, "expected , or => or ), found a string"),
        ("VERSION => 1 + 2,", 7, "expected , or => or ), found '+'"),
        ("VERSION => 'unterminated,\nX => 1", 7, "unterminated string"),
        ('VERSION => "bad \\x41 escape",', 7, "escape \\x in a double-quoted string"),
        ("VERSION => 0755,", 7, "leading 0 makes Perl read it as octal"),
        ("VERSION => 0x1F,", 7, "is not a number Perl reads as written"),
        ("VERSION =>", 7, "odd number of elements"),
        ("MONITOR_PORT => 70000,", 7, "MONITOR_PORT must be a port number from 1 to 65535"),
        ("MONITOR_PORT => 'http',", 7, "MONITOR_PORT must be a port number"),
        ("SLAVE_HOST => 'cfg1.example.com',", 7, "name the same server"),
        ("SLAVE_HOST => 'two words',", 7, "SLAVE_HOST must be a host name or IP address"),
        ("REMOTE_POP3_TIMEOUT => 'soon',", 7, "REMOTE_POP3_TIMEOUT must be a number of seconds"),
        ("REMOTE_POP3_TIMEOUT => 0,", 7, "REMOTE_POP3_TIMEOUT must be a number of seconds"),
        ("STARTUP_SCRIPTS => 5,", 7, "STARTUP_SCRIPTS must be a string of commands"),
    ],
)
def test_what_cannot_be_evaluated_is_an_error_at_its_line(
    body: str, line: int, expect: str
) -> None:
    err = error(config(body))
    assert expect in err.message
    assert (err.path, err.line) == ("old.txt", line)
    assert str(err).startswith(f"old.txt:{line}: ")


def test_missing_sub_config() -> None:
    err = error("# just a comment\n%CONFIG = (A => 1);\n")
    assert err.line == 1
    assert "no `sub CONFIG { ( ... ) }` found" in err.message


def test_sub_config_in_a_comment_does_not_count() -> None:
    assert error("# sub CONFIG { ( ) }\n").line == 1


@pytest.mark.parametrize(
    ("text", "line", "expect"),
    [
        ("\n\nsub CONFIG {\n", 3, "the file ends inside sub CONFIG"),
        ("sub CONFIG {\n(\nA => 'x',\n", 3, "the file ends inside sub CONFIG"),
        ("sub CONFIG {\n{ A => 1 }\n}\n", 2, "expected ( opening"),
        ("sub CONFIG {\n(\n)\n1;\n", 4, "expected } closing sub CONFIG"),
        ("sub CONFIG() {\n(\n)\n}\n", 1, "expected { after sub CONFIG"),
    ],
)
def test_structure_errors(text: str, line: int, expect: str) -> None:
    err = error(text)
    assert expect in err.message
    assert err.line == line


def test_missing_required_key_points_at_sub_config() -> None:
    text = "# x\n\nsub CONFIG {\n(\nSLAVE_HOST => 'b',\n)\n}\n"
    err = error(text)
    assert err.line == 3
    assert "REMOTE_POP3_HOST is missing from sub CONFIG" in err.message


def test_code_outside_sub_config_is_not_evaluated() -> None:
    before = "use strict;\nmy $x = qr/'/;\n"
    assert imported(config("", before=before))["node"]["name"] == "cfg2.example.com"


# -- properties ------------------------------------------------------------------------

PERLISH = st.text(
    alphabet=st.sampled_from("'\"$@%&(){}[]=>,.;#\\\n \t_-0123456789abcXYZ"),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_garbage_raises_only_legacy_error(text: str) -> None:
    with contextlib.suppress(LegacyError):
        import_legacy(text, Preference.STANDBY)


@settings(max_examples=500, deadline=None)
@given(PERLISH, st.sampled_from(list(Preference)))
def test_garbage_inside_sub_config_is_an_error_or_a_valid_config(
    body: str, role: Preference
) -> None:
    try:
        result = import_legacy(config(body), role)
    except LegacyError as e:
        assert e.line is not None and e.line >= 1
        return
    NodeConfig.model_validate(tomllib.loads(result.toml_text))


def perl_quoted(text: str) -> str:
    """`text` as a Perl single-quoted string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_single_quoted_script_text_is_read_back_exactly(text: str) -> None:
    data = imported(config(f"SHUTDOWN_SCRIPTS => {perl_quoted(text)},"))
    expected = [c.strip() for c in text.split(",") if c.strip()]
    assert data.get("scripts", {}).get("shutdown", []) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["REMOTE_POP3_HOST", "SLAVE_HOST", "MONITOR_PORT", "REMOTE_POP3_TIMEOUT"]),
    st.one_of(st.text(max_size=30).map(perl_quoted), st.integers().map(str)),
)
def test_any_value_of_a_mapped_key_is_an_error_or_a_valid_config(key: str, value: str) -> None:
    try:
        imported(config(f"{key} => {value},"))
    except LegacyError as e:
        assert e.line is not None
