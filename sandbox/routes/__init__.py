"""The sandbox's HTTP routes, one APIRouter per area; `create_app` includes `ROUTERS` in order.

RunningHub's API: `upload`, `submit` (one route per model path), `query` (task and queue
status), `account` (account status, price preview), `cancel`; signed file links: `downloads`;
the test-only control API: `control`. What they share lives in `dependencies`.
"""

from . import account, cancel, control, downloads, query, submit, upload

ROUTERS = (
    upload.router,
    submit.router,
    query.router,
    account.router,
    cancel.router,
    downloads.router,
    control.router,
)
