"""The valuation service (``ipvalue serve``): a JSON API for the bank's loan system and a web page
for officers, authenticated by API tokens with roles, recording every valuation, override and
sign-off with the authenticated identity in the tamper-evident audit store.

:func:`create_app` builds the FastAPI app (models loaded once, at start); :class:`ValuationService`
is the work without HTTP; :class:`ServiceSettings` says where the state lives.
"""

from ipvalue.service.app import APPLICATION_SCHEMA, app_from_env, create_app, serving_app
from ipvalue.service.core import MAX_SCORE_ROWS, ServiceSettings, ValuationService

__all__ = ["APPLICATION_SCHEMA", "MAX_SCORE_ROWS", "ServiceSettings", "ValuationService", "app_from_env", "create_app", "serving_app"]
