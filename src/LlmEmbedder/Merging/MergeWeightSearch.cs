using System.Globalization;
using System.Text.Json.Nodes;
using LlmEmbedder.Retrieval;

namespace LlmEmbedder.Merging;

/// <summary>A retrieval set the merged model is measured on, named for people reading the results.</summary>
public sealed record MergeEvalSet(string Name, string EvalData, string? Corpus, EncoderEvaluator Evaluator);

/// <summary>One weight vector tried: the metrics of the merged model on every set, and the mean of the main metric.</summary>
public sealed record MergeCandidate(IReadOnlyList<double> Weights, IReadOnlyList<IReadOnlyDictionary<string, double>> Metrics, double Mean);

/// <summary>Every candidate in the order tried, and the chosen one (the first with the highest mean).</summary>
public sealed record MergeSearchResult(string Metric, double WeightStep, IReadOnlyList<MergeEvalSet> Sets, IReadOnlyList<MergeCandidate> Candidates, int BestIndex)
{
    public MergeCandidate Best => Candidates[BestIndex];

    /// <summary>The candidate that is input model <paramref name="model"/> alone (its weight 1).</summary>
    public MergeCandidate Input(int model) => Candidates.First(c => c.Weights[model] == 1);

    public JsonObject ToJson() => new()
    {
        ["metric"] = Metric,
        ["weight_step"] = WeightStep,
        ["sets"] = new JsonArray(Sets.Select(s => (JsonNode)new JsonObject
        {
            ["name"] = s.Name,
            ["eval_data"] = Path.GetFullPath(s.EvalData),
            ["corpus"] = s.Corpus is null ? null : Path.GetFullPath(s.Corpus),
        }).ToArray()),
        ["candidates"] = new JsonArray(Candidates.Select(c => (JsonNode)new JsonObject
        {
            ["weights"] = new JsonArray(c.Weights.Select(w => (JsonNode)w).ToArray()),
            ["metrics"] = new JsonObject(Sets.Select((s, i) => KeyValuePair.Create(s.Name,
                (JsonNode?)new JsonObject(c.Metrics[i].Select(m => KeyValuePair.Create(m.Key, (JsonNode?)m.Value)))))),
            ["mean"] = c.Mean,
        }).ToArray()),
        ["chosen"] = BestIndex,
    };
}

/// <summary>
/// `merge --weights auto`: tries every weight vector on a grid over the simplex (weights that are multiples of the step
/// and sum to 1; for two models w, 1 − w for w = 0, step, …, 1), merges with each, measures retrieval on every set, and
/// keeps the vector with the highest mean of the main metric over the sets. LM-Cocktail chooses the weights by a search
/// on held-out data; the grid includes each input model alone, so the chosen merge is never worse (on these sets) than
/// any of them. Ties go to the vector tried first (the grid starts at the first model alone).
/// </summary>
public static class MergeWeightSearch
{
    /// <summary>The grid, the first model's weight descending: for 2 models and step 0.25, (1, 0), (0.75, 0.25), …, (0, 1).</summary>
    public static IReadOnlyList<double[]> Grid(int models, double step)
    {
        int divisions = Divisions(step);
        var grid = new List<double[]>();
        var counts = new int[models];
        void Fill(int model, int remaining)
        {
            if (model == models - 1)
            {
                counts[model] = remaining;
                grid.Add(counts.Select(c => (double)c / divisions).ToArray());
                return;
            }
            for (int count = remaining; count >= 0; count--)
            {
                counts[model] = count;
                Fill(model + 1, remaining - count);
            }
        }
        Fill(0, divisions);
        return grid;
    }

    /// <summary>1 / step, which must be a whole number (0.1, 0.05, 0.25, …) so the grid reaches every corner.</summary>
    public static int Divisions(double step)
    {
        if (!(step > 0 && step <= 1)) throw new EmbedderException($"--weight_step must be in (0, 1], got {step.ToString(CultureInfo.InvariantCulture)}");
        double divisions = 1 / step;
        int rounded = (int)Math.Round(divisions);
        if (Math.Abs(divisions - rounded) > 1e-9 * divisions)
            throw new EmbedderException($"--weight_step {step.ToString(CultureInfo.InvariantCulture)}: 1 / step must be a whole number (e.g. 0.1, 0.05, 0.25)");
        return rounded;
    }

    /// <summary>Rejects a main metric the evaluation will not compute ("mrr@10" needs mrr in the metrics and 10 in the cutoffs).</summary>
    public static void CheckMetric(string metric, IReadOnlyList<string> metrics, IReadOnlyList<int> cutoffs)
    {
        var available = metrics.SelectMany(m => cutoffs.Select(k => $"{m}@{k}")).ToList();
        if (!available.Contains(metric))
            throw new EmbedderException($"--metric {metric}: not among the metrics measured ({string.Join(", ", available)}); check --metrics and --cutoffs");
    }

    /// <summary>Fails before any work when there is no set, or the merged model has no instruction for a set's task.</summary>
    public static void CheckSets(ModelMerge merge, IReadOnlyList<MergeEvalSet> sets)
    {
        if (sets.Count == 0) throw new EmbedderException("--weights auto needs at least one --eval_data set to choose the weights on");
        foreach (var set in sets) set.Evaluator.CheckInstruction(merge.First.Spec);
    }

    public static MergeSearchResult Run(ModelMerge merge, IReadOnlyList<MergeEvalSet> sets, string metric, double step,
        IProgress<MergeCandidate>? progress = null)
    {
        CheckSets(merge, sets);
        var candidates = new List<MergeCandidate>();
        foreach (var weights in Grid(merge.Count, step))
        {
            merge.Apply(weights);
            var metrics = sets.Select(s => s.Evaluator.Evaluate(merge.QueryEncoder, merge.KeyEncoder)).ToList();
            var candidate = new MergeCandidate(weights, metrics, metrics.Average(m => m.TryGetValue(metric, out var value)
                ? value
                : throw new EmbedderException($"--metric {metric}: the evaluation measured {string.Join(", ", m.Keys)}")));
            candidates.Add(candidate);
            progress?.Report(candidate);
        }
        int best = 0;
        for (int i = 1; i < candidates.Count; i++)
            if (candidates[i].Mean > candidates[best].Mean) best = i;
        return new MergeSearchResult(metric, step, sets, candidates, best);
    }
}
