// Reading a record's metrics: which one is primary, and which are plain numbers for the metrics table.

// The primary metric as the API's monitoring verdict picks it: monitoring.metric, else accuracy for a
// classifier and r2 for a regressor (README, "The verdict"); rmse when a regressor has no r2.
export function primaryMetric(model) {
  const metrics = model.performance_metrics || {};
  const wanted = [model.monitoring && model.monitoring.metric, "accuracy", "r2", "rmse"].filter(Boolean);
  for (const name of wanted) {
    if (typeof metrics[name] === "number") return { name, value: metrics[name] };
  }
  return null;
}

// Nested metrics (confusion matrix, per-class rows, feature importance) are drawn on their own.
export function scalarMetrics(metrics = {}) {
  return Object.entries(metrics).filter(([, value]) => typeof value === "number" || typeof value === "string")
    .filter(([name]) => name !== "feature_importance_method");
}
