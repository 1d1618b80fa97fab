"""yarn berry's sink: an npmRegistries block in ~/.yarnrc.yml, under the npm block's rules."""

import os
import stat
from pathlib import Path

import pytest

from credhelper.errors import ConfigError
from credhelper.sinks.npmrc import BEGIN, END, NOTE
from credhelper.sinks.yarnrc import YarnrcSink

REG = "https://pkgs.dev.azure.com/contoso/_packaging/feed/npm/registry/"
TOK = "eyJ0eXAiOiJKV1QifQ.tok-yarn-1"
TOK2 = "eyJ0eXAiOiJKV1QifQ.tok-yarn-2"
MINE = ['npmRegistries:', '  "//pkgs.dev.azure.com/contoso/_packaging/feed/npm/registry":',
        "    npmAlwaysAuth: true"]


def block(token: str) -> str:
    return "\n".join([BEGIN, NOTE, *MINE, f'    npmAuthToken: "{token}"', END]) + "\n"


@pytest.fixture
def yarnrc(tmp_path: Path) -> Path:
    return tmp_path / ".yarnrc.yml"


def test_block_after_the_rest_private_and_replaced_on_refresh(yarnrc: Path) -> None:
    yarnrc.write_text("enableTelemetry: false\n")
    sink = YarnrcSink(yarnrc, [REG])
    sink.write({REG: TOK})
    assert yarnrc.read_text() == "enableTelemetry: false\n" + block(TOK)
    assert stat.S_IMODE(os.stat(yarnrc).st_mode) == 0o600
    sink.write({REG: TOK2})
    assert yarnrc.read_text() == "enableTelemetry: false\n" + block(TOK2)
    sink.remove()
    assert yarnrc.read_text() == "enableTelemetry: false\n"


def test_what_yarn_config_set_leaves_of_our_block_is_taken_back(yarnrc: Path) -> None:
    sink = YarnrcSink(yarnrc, [REG])
    sink.write({REG: TOK})
    # `yarn config set -H enableGlobalCache false` (yarn 4.18) re-serialises: no comments, no quotes
    yarnrc.write_text("enableGlobalCache: false\n\nnpmRegistries:\n"
                      '  "//pkgs.dev.azure.com/contoso/_packaging/feed/npm/registry":\n'
                      f"    npmAlwaysAuth: true\n    npmAuthToken: {TOK}\n")
    sink.write({REG: TOK2})
    assert yarnrc.read_text() == "enableGlobalCache: false\n\n" + block(TOK2)


def test_someone_elses_registries_are_left_alone_and_refused(yarnrc: Path) -> None:
    theirs = 'npmRegistries:\n  "//other.example":\n    npmAuthToken: "not-ours"\n'
    yarnrc.write_text(theirs)
    sink = YarnrcSink(yarnrc, [REG])
    with pytest.raises(ConfigError, match="its own npmRegistries"):
        sink.write({REG: TOK})
    assert yarnrc.read_text() == theirs


def test_a_removed_tool_is_never_written_and_a_file_we_made_goes_away(yarnrc: Path) -> None:
    allowed = [False]
    sink = YarnrcSink(yarnrc, [REG], gate=lambda: allowed[0])
    sink.write({REG: TOK})
    assert not yarnrc.exists()
    allowed[0] = True
    sink.write({REG: TOK})
    assert yarnrc.read_text() == block(TOK)
    sink.remove()
    assert not yarnrc.exists()


def test_a_token_yaml_would_need_to_escape_is_refused(yarnrc: Path) -> None:
    sink = YarnrcSink(yarnrc, [REG])
    with pytest.raises(ValueError):
        sink.write({REG: 'abc"def'})
    assert not yarnrc.exists()
