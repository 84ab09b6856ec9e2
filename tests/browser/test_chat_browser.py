"""The chat demo in headless Chromium: two pages chat, the feed updates and survives a reload.

And one room on two servers: two demo processes on one redis-server (two hosts), a page on
each, see each other's messages.

Needs Debian's Chromium and Playwright for Python (not Playwright's own browser
download, which needs the internet)::

    apt-get install -y chromium
    pip install playwright

The browser is /usr/bin/chromium, or FAYE_SYNC_CHROMIUM. Every wait is bounded
by TIMEOUT_MS. The screenshot goes to tests/artifacts/chat.png (git-ignored)
and its path is printed (pytest -rP shows it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chat_demo import Demo, run_demo
from tests.hub_cluster.clients import id_key

CHROMIUM = Path(os.environ.get("FAYE_SYNC_CHROMIUM", "/usr/bin/chromium"))
if not CHROMIUM.exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set FAYE_SYNC_CHROMIUM)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is missing: pip install playwright"
)

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
TIMEOUT_MS = 10_000
# Flags that work as root in containers; Playwright adds headless mode and a
# fresh user data directory itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

expect = sync_api.expect


@pytest.fixture
def demo() -> Iterator[Demo]:
    with run_demo() as running:
        yield running


@pytest.fixture
def browser() -> Iterator[sync_api.Browser]:
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: sync_api.Browser, url: str, problems: list[str]) -> sync_api.Page:
    """A page in its own context (own sessionStorage), with JavaScript errors collected."""
    context = browser.new_context(viewport={"width": 1000, "height": 620})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))

    def on_dialog(dialog: sync_api.Dialog) -> None:
        problems.append(f"dialog: {dialog.message}")  # an alert() means user text ran
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(url)
    expect_connected(page)
    return page


def expect_connected(page: sync_api.Page) -> None:
    expect(page.locator("#ws-state")).to_have_text("open")
    expect(page.locator("#es-state")).to_have_text("open")


def say(page: sync_api.Page, text: str) -> None:
    page.fill("#text", text)
    page.press("#text", "Enter")
    expect(page.locator("#text")).to_have_value("")  # sent: the page clears the input


def feed_ids(page: sync_api.Page) -> list[str]:
    # Reset items (a gap said) carry the id of where it ends, one per channel.
    ids: list[str] = page.eval_on_selector_all(
        "#feed li:not(.reset)", "items => items.map(i => i.dataset.id)"
    )
    return ids


def in_order(ids: list[str]) -> bool:
    """The hub's ids ("<ms>-<seq>") increase and never repeat."""
    return ids == sorted(set(ids), key=id_key)


def expect_chat(page: sync_api.Page, name: str, text: str) -> None:
    """``text`` by ``name`` is in the chat once, and in the feed once."""
    message = page.locator("#messages li", has_text=text)
    expect(message).to_have_count(1)
    expect(message.locator(".name")).to_have_text(name)
    expect(message.locator(".text")).to_have_text(text)
    entry = page.locator("#feed li.chat", has_text=text)
    expect(entry).to_have_count(1)
    expect(entry.locator(".text")).to_have_text(text)


def test_two_pages_chat_and_the_feed_resumes_after_a_reload(
    demo: Demo, browser: sync_api.Browser
) -> None:
    problems: list[str] = []
    alice = open_page(browser, f"{demo.url}?name=alice", problems)
    bob = open_page(browser, f"{demo.url}?name=bob", problems)

    # Markup in a message must show as text, and must not run.
    hello = "Hello Bob! <img src=x onerror=alert(1)> <b>not bold</b>"
    say(alice, hello)
    for page in (alice, bob):  # the sender gets its own message back
        expect_chat(page, "alice", hello)
        expect(page.locator("#messages img, #messages b")).to_have_count(0)
    expect(alice.locator("#messages li.mine")).to_have_count(1)
    expect(bob.locator("#messages li.mine")).to_have_count(0)
    expect(alice.locator("#feed li.join", has_text="bob joined")).to_have_count(1)

    reply = "Hi Alice ✓"
    say(bob, reply)
    for page in (alice, bob):
        expect_chat(page, "bob", reply)

    # Bob reloads: his feed comes back from sessionStorage and the new stream
    # starts after the last id he saw, so nothing shows twice.
    before = feed_ids(bob)
    assert in_order(before), before
    requested: list[str] = []
    bob.on("request", lambda request: requested.append(request.url))
    bob.reload()
    expect_connected(bob)
    expect(bob.locator("#feed li.leave", has_text="bob left")).to_have_count(1)
    expect(bob.locator("#feed li.join", has_text="bob joined")).to_have_count(2)
    after = feed_ids(bob)
    assert after[: len(before)] == before, "the feed shown before the reload is kept"
    assert in_order(after), f"an event shown twice: {after}"
    assert f"{demo.url}events?lastEventId={before[-1]}" in requested, requested
    expect(bob.locator("#messages li")).to_have_count(0)  # the chat itself is live only

    # And it keeps receiving.
    later = "Still there after your reload?"
    say(alice, later)
    for page in (alice, bob):
        expect_chat(page, "alice", later)
    for text in (hello, reply):
        expect(bob.locator("#feed li.chat", has_text=text)).to_have_count(1)
    final = feed_ids(bob)
    assert in_order(final), f"an event shown twice: {final}"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "chat.png"
    bob.screenshot(path=str(screenshot))
    alice.screenshot(path=str(ARTIFACTS / "chat-alice.png"))
    print(f"screenshot: {screenshot}")
    assert screenshot.stat().st_size > 10_000
    assert problems == []


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")
def test_two_pages_on_two_servers_sharing_one_redis_are_one_room(
    browser: sync_api.Browser,
) -> None:
    pytest.importorskip("redis", reason="the Redis engine needs redis-py: pip install redis")
    from tests.redis_server import RedisServer

    problems: list[str] = []
    with RedisServer() as redis, run_demo(redis.url) as east, run_demo(redis.url) as west:
        assert east.port != west.port
        alice = open_page(browser, f"{east.url}?name=alice", problems)
        bob = open_page(browser, f"{west.url}?name=bob", problems)
        # Each page's feed has the other's join: they are in one room.
        expect(alice.locator("#feed li.join", has_text="bob joined")).to_have_count(1)
        expect(bob.locator("#feed li.join", has_text="alice joined")).to_have_count(1)

        say(alice, "Hello from the east server")
        say(bob, "Hello from the west server")
        for page in (alice, bob):
            expect_chat(page, "alice", "Hello from the east server")
            expect_chat(page, "bob", "Hello from the west server")
            ids = feed_ids(page)
            assert in_order(ids), ids
        # One order: the two chat messages are in the same order on both pages.
        texts = "items => items.map(i => i.querySelector('.text').textContent)"
        assert alice.eval_on_selector_all("#messages li", texts) == bob.eval_on_selector_all(
            "#messages li", texts
        )

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        screenshot = ARTIFACTS / "chat-two-servers.png"
        bob.screenshot(path=str(screenshot))
        print(f"screenshot: {screenshot}")
        for demo in (east, west):
            assert "Traceback" not in demo.log()
    assert problems == []
