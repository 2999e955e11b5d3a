"""The team store: a durable, verified remote cache on object storage (issue 14; docs/team.md).

Modules, one concern each:

- ``settings``: where the store is (``[cache] remote``, ``ASSETBUILD_REMOTE``...) and its secrets.
- ``store``: a thin face over obstore (S3, GCS, Azure, HTTP, a folder): get / head / create-only put /
  list / delete, with obstore's errors translated in one place into ``RemoteDown`` (an outage: the
  build goes on) and ``RemoteConfigError`` (a misconfiguration: exit 2 before any work).
- ``objects``: the object format, its signature and its verification.
- ``remote``: ``Remote``, what the build and the commands use: verified fetches, an outage breaker,
  and a bounded background uploader.
- ``gc``: ``assetbuild gc --remote``.

obstore is imported only when a store is opened: the no-op path never pays for it.
"""

from __future__ import annotations
