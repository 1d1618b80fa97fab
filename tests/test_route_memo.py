"""The fast path's URL -> route memo: least recently used out first, emptied by a reload."""

import dataclasses
from typing import Any, Dict, List

from credhelper import ops
from credhelper.config import Route
from credhelper.routing import Router

ROUTE = Route(url="https://dev.azure.com/contoso/", account="work", scopes=("s/.default",),
              username="work")


class CountingRouter(Router):
    """A real router that counts the URLs it had to resolve."""

    def __init__(self) -> None:
        super().__init__([ROUTE])
        self.resolved: List[str] = []

    def resolve(self, url: str) -> Route:
        self.resolved.append(url)
        return super().resolve(url)


def core(router: Router) -> ops.Core:
    """A Core with only its router: route() touches nothing else."""
    required = [f.name for f in dataclasses.fields(ops.Core)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    fields: Dict[str, Any] = {name: None for name in required}
    fields["router"] = router
    return ops.Core(**fields)


def urls(count: int) -> List[str]:
    return [f"https://dev.azure.com/contoso/repo{n}.git/info/refs" for n in range(count)]


def test_two_thousand_urls_in_rotation_are_resolved_once_each() -> None:
    router = CountingRouter()
    memo = core(router)
    for _ in range(3):
        for url in urls(2000):
            assert memo.route(url) == ROUTE
    assert len(router.resolved) == 2000


def test_the_least_recently_used_url_goes_first() -> None:
    router = CountingRouter()
    memo = core(router)
    first, *rest = urls(ops.ROUTE_MEMO + 1)
    memo.route(first)
    for url in rest[:-1]:
        memo.route(url)
    memo.route(first)             # used again: now the most recent
    memo.route(rest[-1])          # one too many: rest[0], the least recent, goes
    router.resolved.clear()
    memo.route(first)
    memo.route(rest[0])
    assert router.resolved == [rest[0]]


def test_a_new_router_starts_afresh() -> None:
    old, new = CountingRouter(), CountingRouter()
    memo = core(old)
    memo.route(urls(1)[0])
    memo.router = new
    memo.route(urls(1)[0])
    assert new.resolved == urls(1)
