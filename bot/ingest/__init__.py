"""Span ingestion: OTLP receiver, decoders, file loaders and the pipeline into the store."""
