"""The sandbox's Salesforce dialect: REST, Bulk API 2.0, Tooling and logins over a generated org.

    with start_sandbox("salesforce", generate_org(2000, 7)) as crm:
        sf = Salesforce(instance_url=INSTANCE_URL, session_id=crm.token,
                        session=client_session(crm.base_url))

Modules: `ids` (record ids), `schema` (objects and fields), `mapping` (org -> records),
`catalog` (metadata as it changes), `store` and `writes` (records and saving them), `merges`
(Account, Contact and Lead merges), `coerce`, `formula` (validation rules), `auth`, `limits`,
`errors`, `routing`, `rest`, `query`, `composite` (sObject Collections),
`subrequests` (Composite), `bulk` and `bulk_data`, `tooling`, `dialect`
and `client` (the loopback session for clients).
"""

from sandbox.salesforce.client import LoopbackAdapter, client_session
from sandbox.salesforce.config import API_VERSION, SalesforceOptions
from sandbox.salesforce.dialect import SalesforceDialect, make_dialect

__all__ = [
    "API_VERSION",
    "LoopbackAdapter",
    "SalesforceDialect",
    "SalesforceOptions",
    "client_session",
    "make_dialect",
]
