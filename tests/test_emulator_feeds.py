"""The feed server with the real tools: git clone/push, pip download/install, npm install."""

import base64
import json
import os
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile

import pytest

from credhelper.emulator import Emulator

FEED_AUD = "api://credhelper-feed"
ADO_AUD = "499b84ac-1321-427f-aa17-267ca6975798"


@pytest.fixture(scope="module")
def em(tmp_path_factory):
    with Emulator(tmp_path_factory.mktemp("emulator")) as em:
        yield em


def token_for(em, audience=FEED_AUD, user="alice@contoso.com"):
    return em.idp.issue(em.tenant, audience, "public-app", user=user)["access_token"]


def run(args, env, cwd, secret):
    """Run a tool; on failure show its output with the token scrubbed."""
    __tracebackhide__ = True  # pytest would print this frame's arguments: the token
    result = subprocess.run(args, env=env, cwd=str(cwd), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=120)
    output = result.stdout.decode("utf-8", "replace").replace(secret, "<token>")
    code = result.returncode
    assert code == 0, output
    return output


def clean_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "PIP_", "NPM_CONFIG_", "npm_config_"))
           and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}  # they beat pip's --cert
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"),
               GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0")
    env.update(extra)
    return env


def get(em, path, headers=None):
    context = ssl.create_default_context(cafile=str(em.ca_file))
    request = urllib.request.Request(em.feed_base + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def git_env(em, tmp_path, token):
    return clean_env(tmp_path, GIT_SSL_CAINFO=str(em.ca_file), GIT_CONFIG_COUNT="3",
                     GIT_CONFIG_KEY_0="http.extraHeader",
                     GIT_CONFIG_VALUE_0="Authorization: Bearer " + token,
                     GIT_CONFIG_KEY_1="user.name", GIT_CONFIG_VALUE_1="Alice",
                     GIT_CONFIG_KEY_2="user.email", GIT_CONFIG_VALUE_2="alice@contoso.com")


def test_git_clone_and_push_with_bearer(em, tmp_path):
    token = token_for(em)
    env = git_env(em, tmp_path, token)
    run(["git", "clone", "-q", em.git_url(), "demo"], env, tmp_path, token)
    assert (tmp_path / "demo" / "README.md").read_text().startswith("# demo.git")
    (tmp_path / "demo" / "change.txt").write_text("pushed\n")
    run(["git", "add", "change.txt"], env, tmp_path / "demo", token)
    run(["git", "commit", "-qm", "a change"], env, tmp_path / "demo", token)
    run(["git", "push", "-q", "origin", "main"], env, tmp_path / "demo", token)
    log = run(["git", "--git-dir", str(em.workdir / "feeds" / "git" / "demo.git"), "log",
               "--format=%s", "main"], env, tmp_path, token)
    assert log.splitlines()[0] == "a change"
    pushes = [e for e in em.feeds.log if e["path"].endswith("git-receive-pack")]
    assert pushes and pushes[-1]["status"] == 200 and pushes[-1]["upn"] == "alice@contoso.com"
    assert pushes[-1]["auth"] == "bearer"
    assert token not in json.dumps(em.feeds.log)


def test_git_clone_with_basic_credentials_in_url(em, tmp_path):
    token = token_for(em, audience=ADO_AUD)
    env = clean_env(tmp_path, GIT_SSL_CAINFO=str(em.ca_file))
    url = em.git_url().replace("https://", "https://entra:{}@".format(token))
    run(["git", "clone", "-q", url, "basic"], env, tmp_path, token)
    assert (tmp_path / "basic" / "README.md").exists()
    assert em.feeds.log[-1]["auth"] == "basic"


def test_git_without_token_is_refused(em, tmp_path):
    env = clean_env(tmp_path, GIT_SSL_CAINFO=str(em.ca_file))
    result = subprocess.run(["git", "clone", "-q", em.git_url(), "nope"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert result.returncode != 0
    assert not (tmp_path / "nope").exists()


def test_add_git_repo(em, tmp_path):
    em.feeds.add_git_repo("extra")
    token = token_for(em)
    run(["git", "ls-remote", em.git_url("extra.git")], git_env(em, tmp_path, token), tmp_path,
        token)


def pip_args(em, token, command):
    index = em.pypi_url.replace("https://", "https://x:{}@".format(token))
    return [sys.executable, "-m", "pip", command, "--isolated", "--disable-pip-version-check",
            "--no-input", "--index-url", index, "--cert", str(em.ca_file)]


def test_pip_install_wheel_and_download_sdist(em, tmp_path):
    token = token_for(em)
    env = clean_env(tmp_path)
    run(pip_args(em, token, "install") + ["--no-deps", "--only-binary", ":all:", "--target",
                               str(tmp_path / "target"), "hello-private==1.0.0"],
        env, tmp_path, token)
    init = tmp_path / "target" / "hello_private" / "__init__.py"
    assert '__version__ = "1.0.0"' in init.read_text()
    assert (tmp_path / "target" / "hello_private-1.0.0.dist-info" / "RECORD").exists()
    # pip cannot build the sdist without `wheel` in this venv; check it is a real sdist.
    status, _, page = get(em, "/pypi/simple/hello-private/", {"Authorization": "Bearer " + token})
    assert status == 200 and b"hello_private-1.0.0.tar.gz#sha256=" in page
    status, _, data = get(em, "/pypi/files/hello-private/hello_private-1.0.0.tar.gz",
                          {"Authorization": "Bearer " + token})
    (tmp_path / "sdist.tar.gz").write_bytes(data)
    with tarfile.open(tmp_path / "sdist.tar.gz") as sdist:
        assert {"hello_private-1.0.0/PKG-INFO", "hello_private-1.0.0/pyproject.toml"} <= set(
            sdist.getnames())


def test_pep503_index_and_new_wheel(em, tmp_path):
    em.feeds.add_wheel("Other_Pkg", "2.0.1")
    headers = {"Authorization": "Bearer " + token_for(em)}
    status, _, body = get(em, "/pypi/simple/", headers)
    assert status == 200 and b'href="other-pkg/"' in body and b'href="hello-private/"' in body
    status, _, body = get(em, "/pypi/simple/other-pkg/", headers)
    assert status == 200 and b"other_pkg-2.0.1-py3-none-any.whl#sha256=" in body
    status, _, data = get(em, "/pypi/files/other-pkg/other_pkg-2.0.1-py3-none-any.whl", headers)
    assert status == 200
    (tmp_path / "w.whl").write_bytes(data)
    assert zipfile.ZipFile(tmp_path / "w.whl").testzip() is None


def test_npm_install_scoped_and_unscoped(em, tmp_path):
    token = token_for(em)
    host = em.feed_base.split("://", 1)[1]
    npmrc = tmp_path / "npmrc"
    npmrc.write_text("registry={}\n//{}/npm/:_authToken={}\ncafile={}\n".format(
        em.npm_url, host, token, em.ca_file))
    project = tmp_path / "project"
    project.mkdir()
    (project / "package.json").write_text(json.dumps({
        "name": "consumer", "version": "1.0.0", "private": True,
        "dependencies": {"hello-private": "^1.0.0", "@contoso/hello-scoped": "1.0.0"}}))
    env = clean_env(tmp_path, NPM_CONFIG_USERCONFIG=str(npmrc),
                    NPM_CONFIG_GLOBALCONFIG=os.devnull, npm_config_cache=str(tmp_path / "cache"))
    run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts"], env, project, token)
    scoped = json.loads((project / "node_modules/@contoso/hello-scoped/package.json").read_text())
    assert scoped["version"] == "1.0.0"
    assert (project / "node_modules/hello-private/index.js").exists()
    lock = json.loads((project / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/hello-private"]["integrity"].startswith("sha512-")
    tarballs = [e for e in em.feeds.log if e["path"].endswith(".tgz")]
    assert tarballs and all(e["status"] == 200 and e["auth"] == "bearer" for e in tarballs)


def test_npm_packument_both_spellings(em):
    headers = {"Authorization": "Bearer " + token_for(em)}
    for path in ("/npm/@contoso%2fhello-scoped", "/npm/@contoso/hello-scoped"):
        status, _, body = get(em, path, headers)
        doc = json.loads(body)
        assert status == 200 and doc["dist-tags"]["latest"] == "1.0.0"
        dist = doc["versions"]["1.0.0"]["dist"]
        assert dist["tarball"] == em.feed_base + "/npm/@contoso/hello-scoped/-/hello-scoped-1.0.0.tgz"
        assert len(dist["shasum"]) == 40


@pytest.mark.parametrize("headers_for", [
    lambda em: {},
    lambda em: {"Authorization": "Bearer " + token_for(em, audience="api://someone-else")},
    lambda em: {"Authorization": "Bearer not-a-jwt"},
    lambda em: {"Authorization": "Basic " + base64.b64encode(b"x:" + em.idp.signing_key.sign({
        "aud": FEED_AUD, "exp": int(time.time()) - 5, "sub": "s"}).encode()).decode()},
], ids=["none", "wrong-aud", "garbage", "expired"])
def test_unauthorized_answers_401_with_challenges(em, headers_for):
    status, headers, _ = get(em, "/pypi/simple/", headers_for(em))
    assert status == 401
    challenges = headers.get_all("WWW-Authenticate")
    assert 'Basic realm="credhelper-emulator"' in challenges
    assert any(c.startswith("Bearer") for c in challenges)
    assert em.feeds.log[-1]["status"] == 401


def test_stats_include_feed_log(em):
    context = ssl.create_default_context(cafile=str(em.ca_file))
    with urllib.request.urlopen(em.idp_base + "/_emulator/stats", context=context) as response:
        stats = json.loads(response.read())
    assert stats["feed_log"] and "token_requests" in stats


def test_open_index_only_when_asked_and_only_under_its_prefix(em):
    open_simple = "/open/pypi/simple/hello-private/"
    assert get(em, open_simple)[0] == 401
    em.feeds.open_access = True
    try:
        status, _, body = get(em, open_simple)
        assert status == 200 and b"hello_private-1.0.0-py3-none-any.whl" in body
        href = body.decode().split('href="', 1)[1].split("#", 1)[0]
        wheel = urllib.parse.urljoin(em.open_pypi_url + "hello-private/", href)
        assert get(em, wheel[len(em.feed_base):])[0] == 200
        assert get(em, "/pypi/simple/hello-private/")[0] == 401
        assert em.feeds.log[-2]["path"] == wheel[len(em.feed_base):]
    finally:
        em.feeds.open_access = False


def send(em, method, path, body, headers):
    """One request with a body; (status, parsed JSON)."""
    context = ssl.create_default_context(cafile=str(em.ca_file))
    request = urllib.request.Request(em.feed_base + path, data=body, method=method,
                                     headers=dict(headers, **{"Content-Type": "application/json"}))
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if body.startswith(b"{") else {"text": body.decode()}


def publish_doc(name, version, data):
    from credhelper.emulator.packages import npm_integrity

    tarball = "{}-{}.tgz".format(name.split("/")[-1], version)
    return json.dumps({
        "_id": name, "name": name, "dist-tags": {"latest": version},
        "versions": {version: {"name": name, "version": version, "main": "index.js",
                               "dist": dict(npm_integrity(data), tarball="x/" + tarball)}},
        "_attachments": {tarball: {"content_type": "application/octet-stream",
                                   "data": base64.b64encode(data).decode(), "length": len(data)}},
    }).encode()


def test_npm_whoami_names_the_token_and_needs_one(em):
    status, doc = send(em, "GET", "/npm/-/whoami", None,
                       {"Authorization": "Bearer " + token_for(em, user="bob@contoso.com")})
    assert (status, doc) == (200, {"username": "bob@contoso.com"})
    assert send(em, "GET", "/npm/-/whoami", None, {})[0] == 401


def test_npm_publish_then_install_metadata_and_no_overwrite(em):
    from credhelper.emulator.packages import npm_tarball

    auth = {"Authorization": "Bearer " + token_for(em)}
    data = npm_tarball("@contoso/published", "2.0.0")
    doc = publish_doc("@contoso/published", "2.0.0", data)
    assert send(em, "PUT", "/npm/@contoso%2fpublished", doc, {})[0] == 401
    assert send(em, "PUT", "/npm/@contoso%2fpublished", doc, auth)[0] == 201
    status, _, body = get(em, "/npm/@contoso%2fpublished", auth)
    packument = json.loads(body)
    assert packument["dist-tags"]["latest"] == "2.0.0"
    assert set(packument["time"]) == {"2.0.0", "created", "modified"}
    tarball = packument["versions"]["2.0.0"]["dist"]["tarball"]
    assert get(em, tarball[len(em.feed_base):], auth)[2] == data
    status, answer = send(em, "PUT", "/npm/@contoso%2fpublished", doc, auth)
    assert status == 403 and "2.0.0" in answer["error"]


@pytest.mark.parametrize("mangle", [
    lambda doc: doc.replace(b'"name": "@contoso/bad"', b'"name": "@contoso/other"', 1),
    lambda doc: doc.replace(b'"_attachments"', b'"_nothing"'),
    lambda doc: doc[:-20],
    lambda doc: doc.replace(b'"integrity": "sha512-', b'"integrity": "sha512-AAAA'),
], ids=["name", "no-tarball", "truncated", "integrity"])
def test_npm_publish_refuses_a_bad_document(em, mangle):
    from credhelper.emulator.packages import npm_tarball

    auth = {"Authorization": "Bearer " + token_for(em)}
    doc = mangle(publish_doc("@contoso/bad", "1.0.0", npm_tarball("@contoso/bad", "1.0.0")))
    assert send(em, "PUT", "/npm/@contoso%2fbad", doc, auth)[0] == 400
    assert get(em, "/npm/@contoso%2fbad", auth)[0] == 404
