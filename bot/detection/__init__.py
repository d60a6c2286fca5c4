"""Detection engine: the IO side of detection (store, clock, events) around the pure `detectors`.

Modules: `engine` (DetectionEngine, the detector loop), `events` (EngineEvent, what
subscribers receive), `tap` (feeding the engine from an IngestPipeline), `recalc`
(severity recalculation and its dry run), `commands` (`opsbot anomalies`, `opsbot
recalc`). Pure helpers: `rolling`, `window_step`, `error_rate`, `score_hist`,
`incident_book`. Imports stay in the submodules so the store can use `score_hist`
without importing the engine.
"""
