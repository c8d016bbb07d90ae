"""The model-type recommender's pure parts: sampling, profiling, probes and scoring.

Everything here runs in the Lambda package, so it uses the standard library only
(no numpy, pandas or scikit-learn). `sample` reads a bounded sample from S3 through
the S3 adapter; `profile` describes the ontology and the sampled columns; `probes`
fits two tiny models on the sample (a ridge fit and a shallow tree); `selector` turns
the analysis into each type's calibrated probability of being within 0.01 of the best,
with the learned model shipped as data (`selector.json`, fitted by
`bench/recommend_select.py`); `engine` ties them together and `scoring` picks.
"""
