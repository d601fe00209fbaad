"""The publisher loop of the embedded mode: started by the app's lifespan when background work is
on (`postengine serve`), cancelled on shutdown. A cancelled publish is safe: its destination keeps
its lease until it expires, then the next claim checks `find_published` before sending again."""

from postengine.accounts.connectors.registry import Connectors
from postengine.context import AppContext
from postengine.posts.publisher import Publisher, PublisherConfig


def embedded_publisher(ctx: AppContext, config: PublisherConfig | None = None) -> Publisher:
    return Publisher(ctx.db, ctx.clock, Connectors(ctx.db, ctx.clock), ctx.settings.media_base_url, config)


async def run_publisher(ctx: AppContext) -> None:
    await embedded_publisher(ctx).run()
