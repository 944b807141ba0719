namespace LlmEmbedder.Retrieval;

/// <summary>
/// One metric of a model against a baseline. <see cref="Change"/> is model − baseline, so it is positive when the model
/// is better (every metric here is higher-is-better): after − before for a trained model against its start, as
/// training's table shows it, and --model − --compare in eval.
/// </summary>
public sealed record MetricChange(string Metric, double Model, double Baseline)
{
    public double Change => Model - Baseline;

    /// <summary>Every metric of either side, the model's order first; a metric one side lacks is NaN there.</summary>
    public static IReadOnlyList<MetricChange> Compare(IReadOnlyDictionary<string, double> model, IReadOnlyDictionary<string, double> baseline) =>
        model.Keys.Concat(baseline.Keys).Distinct()
            .Select(name => new MetricChange(name, model.GetValueOrDefault(name, double.NaN), baseline.GetValueOrDefault(name, double.NaN)))
            .ToList();
}
