"""The training container: reads a spec, trains one model, writes a versioned artifact, reports back.

Public API: `trainer.pipeline.train_and_evaluate`, `trainer.loader.load_model`,
`trainer.ontology.ontology_from_frame`; `python -m trainer` runs a whole job.
"""
