"""connectors: Salesforce and HubSpot behind one protocol; nothing of our database or scoring.

`protocol` (the Connector protocol and the values that cross it), `streams` (every object and
field mapping, as data), `schema` (the fields we own), `errors` (the exception tree and the one
retriable-or-fatal decision), `http` (the one retry, pacing and timeout policy), `budget` (the
run's share of the daily API allowance), then one family of modules per CRM: `salesforce`,
`salesforce_api`, `salesforce_bulk`, `salesforce_setup`; `hubspot`, `hubspot_api`,
`hubspot_setup`.

How a caller picks the route: `handoff.crm` does it from settings. For a real org it builds
``SalesforceConnector(settings.salesforce)`` or ``HubSpotConnector(settings.hubspot)``; for
``[crm] kind = "sandbox"`` it passes the sandbox's loopback route instead, which only the entry
point may know: ``session=sandbox.salesforce.client_session(url)`` for Salesforce (its
``https://*.salesforce.com`` calls go to the sandbox) or ``host=url`` for HubSpot.
"""
