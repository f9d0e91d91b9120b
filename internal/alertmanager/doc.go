// Package alertmanager runs a multi-tenant Alertmanager: one Prometheus Alertmanager
// (github.com/prometheus/alertmanager, used as a library) per workspace that has an alert
// manager definition, single-node, with AMP's API and quotas. Cortex's pkg/alertmanager
// is the model.
//
// Start from MultiTenant: New takes the Config and the Deps (the workspaces, the bucket,
// the quotas), Run keeps the Alertmanagers in line with the definitions, Routes lists the
// API for the HTTP server to mount, SendAlerts is the ruler's in-process input and
// DeleteWorkspace removes a deleted workspace's state.
//
//	meta.Store ── Changes / resync ──▶ Sync ──▶ per workspace with a definition:
//	                                    │  ParseDefinition (alertmanager_config, template_files)
//	                                    │  new: load silences + nflog (bucket ∪ data dir)
//	                                    │  changed: applyConfig (state kept; on error the
//	                                    │           previous configuration stays)
//	                                    └─ gone: stop, persist
//
//	ruler ─ SendAlerts ─┐
//	POST /api/v2/alerts ┴▶ limitedAlerts (quotas: 429) ─▶ mem store ─▶ dispatcher ─▶ groups
//	                                                         │             │
//	                                                     inhibitor     pipeline: inhibit,
//	                                                                   time intervals, silences,
//	                                                                   dedup (nflog), retry
//	                                                                   with backoff, notify
//	                                                                   (panics recovered)
//
//	GET|POST|DELETE /workspaces/{id}/alertmanager/api/v2/... ─▶ the workspace's own
//	library API v2 handler (go-swagger), prefix stripped; 404 without a definition
//
// A workspace's tenant owns, like the Alertmanager binary: an in-memory alert store, the
// silences, the notification log (nflog), the API, and, rebuilt at every change of the
// definition, its templates, routes, receivers, time intervals, inhibitor, notification
// pipeline and dispatcher. Each aggregation group notifies on its own goroutine and
// retries with backoff within its group interval, so a slow or unreachable receiver
// holds up no other group and no other workspace.
//
// State: the silences and the notification log are written to the bucket
// (alertmanager/<workspace>/silences and …/nflog; each Upload replaces the whole object)
// and to the data directory every persist interval, at shutdown, and, for silences,
// before the API answers a change; a starting Alertmanager merges both copies (newest
// entry wins). So silences hold and groups are not notified again after a restart.
//
// Metrics: each workspace's Alertmanager registers the library's metrics in a registry
// of its own; one collector exports them all as strata_<name>{workspace="…",…}.
package alertmanager
