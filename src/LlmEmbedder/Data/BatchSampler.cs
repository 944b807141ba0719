using System.Text.Json;
using System.Text.Json.Serialization;

namespace LlmEmbedder.Data;

/// <summary>--inbatch_same_dataset: how global batches are drawn from the datasets (docs/REFERENCE.md §5).</summary>
public enum InBatchSameDataset
{
    /// <summary>Flag absent: shuffle all samples together; only allowed when every dataset has the same task.</summary>
    None,
    /// <summary>"epoch": every epoch, reshuffle each dataset, cut into global batches, shuffle the batches.</summary>
    Epoch,
    /// <summary>"epoch-static": batches cut once; only their order changes per epoch.</summary>
    EpochStatic,
    /// <summary>"random": each step, a dataset ∝ its size, then a random global batch from it.</summary>
    Random,
    /// <summary>"epoch-random": each step, a dataset ∝ its remaining size, then its next pre-shuffled batch; refill when all are used.</summary>
    EpochRandom,
}

public static class InBatchSameDatasetNames
{
    private static readonly (string Name, InBatchSameDataset Mode)[] Table =
    [
        ("none", InBatchSameDataset.None), ("epoch", InBatchSameDataset.Epoch), ("epoch-static", InBatchSameDataset.EpochStatic),
        ("random", InBatchSameDataset.Random), ("epoch-random", InBatchSameDataset.EpochRandom),
    ];

    public static IReadOnlyList<string> Names { get; } = Table.Select(t => t.Name).ToArray();

    public static string Name(InBatchSameDataset mode) => Table.First(t => t.Mode == mode).Name;

    public static InBatchSameDataset Parse(string name)
    {
        foreach (var (candidate, mode) in Table)
            if (candidate == name) return mode;
        throw new EmbedderException($"inbatch_same_dataset \"{name}\" is not one of {string.Join(" | ", Names)}");
    }
}

/// <summary>Where one dataset's samples sit among all samples: indices Offset .. Offset+Count−1.</summary>
public sealed record DatasetSpan(string Name, string Task, int Offset, int Count, bool HasTeacherScores = false);

/// <summary>
/// One optimisation step's data: the global batch (identical on every rank; rank r's share is
/// [r·B, (r+1)·B)) and this rank's slice.
/// </summary>
/// <param name="DatasetIndex">The dataset every sample comes from; null in mode none.</param>
public sealed record SamplerBatch(int Epoch, int StepInEpoch, int? DatasetIndex, int[] GlobalIndices, int[] RankIndices);

/// <summary>
/// Where a sampler stands, small enough for a checkpoint: the next batch is (Epoch, StepInEpoch). The
/// batches themselves are a pure function of the seed and these coordinates, so no generator state is
/// needed; the other fields guard a resume against a changed setup.
/// </summary>
public sealed record BatchSamplerState(
    string Mode, long Seed, int WorldSize, int PerDeviceBatchSize, string DataFingerprint, int Epoch, int StepInEpoch)
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public static BatchSamplerState FromJson(string json, string source = "sampler state")
    {
        try
        {
            return JsonSerializer.Deserialize<BatchSamplerState>(json, JsonOptions)
                ?? throw new EmbedderException($"{source}: empty sampler state");
        }
        catch (JsonException e)
        {
            throw new EmbedderException($"{source}: not a sampler state ({e.Message})");
        }
    }
}

/// <summary>Yields the batches of a training run for one rank; every rank computes the same global batches.</summary>
public interface IBatchSampler
{
    InBatchSameDataset Mode { get; }
    /// <summary>Known up front, for the learning-rate schedule and progress.</summary>
    int StepsPerEpoch { get; }
    /// <summary>per_device_train_batch_size × world size.</summary>
    int GlobalBatchSize { get; }
    /// <summary>The position of the next batch.</summary>
    BatchSamplerState State { get; }
    SamplerBatch Next();
    /// <summary>Continues from a saved <see cref="State"/>; the sequence is then identical to an uninterrupted run.</summary>
    void Restore(BatchSamplerState state);
}

/// <summary>
/// The five batching modes of docs/REFERENCE.md §5 for world size W and rank r. Each epoch's list of global batches
/// is computed from generators derived from (seed, mode stream, epoch, dataset), identically on all
/// ranks, so no communication is needed and a resume needs only (epoch, step). Every global batch has
/// exactly B·W samples: what does not fill one is dropped, per dataset in the dataset modes.
/// </summary>
/// <remarks>
/// Deliberate differences from the reference: in "random" the global batch is one draw without
/// replacement split across ranks (the reference lets each rank draw on its own, so ranks can repeat a
/// sample); "epoch-random" counts a dataset's remaining size in whole global batches (the reference can
/// hand out one short batch); "none" drops the last partial batch like the dataset modes.
/// </remarks>
public sealed class BatchSampler : IBatchSampler
{
    private const long NoneStream = 1, EpochStream = 2, StaticStream = 3, RandomStream = 4, EpochRandomStream = 5;
    private const long OrderTag = -1;

    private readonly IReadOnlyList<DatasetSpan> _datasets;
    private readonly int _batchSize;
    private readonly int _worldSize;
    private readonly int _rank;
    private readonly long _seed;
    private readonly string _fingerprint;
    private List<(int? Dataset, int[] Indices)>? _staticBatches;
    private (int Epoch, List<(int? Dataset, int[] Indices)> Batches)? _plan;
    private int _epoch;
    private int _step;

    public InBatchSameDataset Mode { get; }
    public int StepsPerEpoch { get; }
    public int GlobalBatchSize => _batchSize * _worldSize;

    public BatchSamplerState State => new(InBatchSameDatasetNames.Name(Mode), _seed, _worldSize, _batchSize, _fingerprint, _epoch, _step);

    public BatchSampler(InBatchSameDataset mode, IReadOnlyList<DatasetSpan> datasets, int perDeviceBatchSize, int worldSize, int rank, long seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(perDeviceBatchSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(worldSize, 1);
        if (rank < 0 || rank >= worldSize)
            throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is outside world size {worldSize}");
        if (datasets.Count == 0)
            throw new EmbedderException("no training datasets");
        Mode = mode;
        _datasets = datasets;
        _batchSize = perDeviceBatchSize;
        _worldSize = worldSize;
        _rank = rank;
        _seed = seed;
        _fingerprint = string.Join(";", datasets.Select(d => $"{d.Name}:{d.Count}"));
        if (mode == InBatchSameDataset.None) CheckOneKindOfBatch(datasets);
        StepsPerEpoch = CountSteps();
        if (StepsPerEpoch == 0)
            throw new EmbedderException(NotEnoughSamplesMessage());
    }

    public SamplerBatch Next()
    {
        var batch = BatchAt(_epoch, _step);
        if (++_step == StepsPerEpoch)
        {
            _step = 0;
            _epoch++;
        }
        return batch;
    }

    public void Restore(BatchSamplerState state)
    {
        void Require(bool same, string what, object saved, object now)
        {
            if (!same)
                throw new EmbedderException($"cannot resume the data order: it was saved with {what} {saved}, this run has {now}");
        }
        Require(state.Mode == InBatchSameDatasetNames.Name(Mode), "inbatch_same_dataset", state.Mode, InBatchSameDatasetNames.Name(Mode));
        Require(state.Seed == _seed, "seed", state.Seed, _seed);
        Require(state.WorldSize == _worldSize, "world size", state.WorldSize, _worldSize);
        Require(state.PerDeviceBatchSize == _batchSize, "per_device_train_batch_size", state.PerDeviceBatchSize, _batchSize);
        Require(state.DataFingerprint == _fingerprint, "datasets (name:samples)", state.DataFingerprint, _fingerprint);
        if (state.Epoch < 0 || state.StepInEpoch < 0 || state.StepInEpoch >= StepsPerEpoch)
            throw new EmbedderException($"cannot resume the data order: position epoch {state.Epoch} step {state.StepInEpoch} is outside 0..{StepsPerEpoch - 1}");
        _epoch = state.Epoch;
        _step = state.StepInEpoch;
    }

    /// <summary>The batch at a position, without moving the sampler.</summary>
    public SamplerBatch BatchAt(int epoch, int stepInEpoch)
    {
        if (stepInEpoch < 0 || stepInEpoch >= StepsPerEpoch)
            throw new ArgumentOutOfRangeException(nameof(stepInEpoch));
        if (_plan is not { } plan || plan.Epoch != epoch)
        {
            plan = (epoch, PlanEpoch(epoch));
            _plan = plan;
        }
        var (dataset, indices) = plan.Batches[stepInEpoch];
        var slice = indices[(_rank * _batchSize)..((_rank + 1) * _batchSize)];
        return new SamplerBatch(epoch, stepInEpoch, dataset, indices.ToArray(), slice);
    }

    private void CheckOneKindOfBatch(IReadOnlyList<DatasetSpan> datasets)
    {
        var used = datasets.Where(d => d.Count > 0).ToList();
        if (used.Select(d => d.Task).Distinct().Count() > 1)
            throw new EmbedderException("mixed tasks in one batch: use --inbatch_same_dataset (datasets: "
                + string.Join(", ", used.Select(d => $"{d.Name} = {d.Task}")) + ")");
        if (used.Select(d => d.HasTeacherScores).Distinct().Count() > 1)
            throw new EmbedderException("mixed teacher_scores in one batch: use --inbatch_same_dataset (with teacher_scores: "
                + string.Join(", ", used.Where(d => d.HasTeacherScores).Select(d => d.Name)) + "; without: "
                + string.Join(", ", used.Where(d => !d.HasTeacherScores).Select(d => d.Name)) + ")");
    }

    private int CountSteps()
    {
        var global = GlobalBatchSize;
        return Mode switch
        {
            InBatchSameDataset.None => (int)(_datasets.Sum(d => (long)d.Count) / global),
            InBatchSameDataset.Random => (int)(_datasets.Where(d => d.Count >= global).Sum(d => (long)d.Count) / global),
            _ => _datasets.Sum(d => d.Count / global),
        };
    }

    private string NotEnoughSamplesMessage()
    {
        var largest = _datasets.MaxBy(d => d.Count)!;
        var what = Mode == InBatchSameDataset.None
            ? $"only {_datasets.Sum(d => (long)d.Count)} samples in all"
            : $"no dataset has that many (largest: {largest.Name} with {largest.Count})";
        return $"not enough training samples for one global batch of {GlobalBatchSize} "
            + $"(per_device_train_batch_size {_batchSize} × {_worldSize} processes): {what}";
    }

    private List<(int? Dataset, int[] Indices)> PlanEpoch(int epoch) => Mode switch
    {
        InBatchSameDataset.None => PlanNone(epoch),
        InBatchSameDataset.Epoch => Shuffled(CutPerDataset(EpochStream, epoch), OrderStream(EpochStream, epoch)),
        InBatchSameDataset.EpochStatic => Shuffled(_staticBatches ??= CutPerDataset(StaticStream, 0), OrderStream(StaticStream, epoch)),
        InBatchSameDataset.Random => PlanRandom(epoch),
        InBatchSameDataset.EpochRandom => PlanEpochRandom(epoch),
        _ => throw new InvalidOperationException($"unknown mode {Mode}"),
    };

    private DeterministicRandom OrderStream(long stream, int epoch) => DeterministicRandom.ForStream(_seed, stream, epoch, OrderTag);

    private List<(int? Dataset, int[] Indices)> PlanNone(int epoch)
    {
        var all = _datasets.SelectMany(d => Enumerable.Range(d.Offset, d.Count)).ToArray();
        DeterministicRandom.ForStream(_seed, NoneStream, epoch).Shuffle(all.AsSpan());
        return Cut(all, null);
    }

    /// <summary>Each dataset's indices shuffled by its own generator, remainder dropped, cut into global batches (dataset order).</summary>
    private List<(int? Dataset, int[] Indices)> CutPerDataset(long stream, int epoch)
    {
        var batches = new List<(int? Dataset, int[] Indices)>();
        for (var d = 0; d < _datasets.Count; d++)
            batches.AddRange(Cut(ShuffledIndices(d, stream, epoch), d));
        return batches;
    }

    private int[] ShuffledIndices(int dataset, long stream, int epoch)
    {
        var span = _datasets[dataset];
        var indices = Enumerable.Range(span.Offset, span.Count).ToArray();
        DeterministicRandom.ForStream(_seed, stream, epoch, dataset).Shuffle(indices.AsSpan());
        return indices;
    }

    private List<(int? Dataset, int[] Indices)> Cut(int[] indices, int? dataset)
    {
        var global = GlobalBatchSize;
        var batches = new List<(int? Dataset, int[] Indices)>(indices.Length / global);
        for (var start = 0; start + global <= indices.Length; start += global)
            batches.Add((dataset, indices[start..(start + global)]));
        return batches;
    }

    private static List<(int? Dataset, int[] Indices)> Shuffled(List<(int? Dataset, int[] Indices)> batches, DeterministicRandom random)
    {
        var order = batches.ToArray();
        random.Shuffle(order.AsSpan());
        return [.. order];
    }

    private List<(int? Dataset, int[] Indices)> PlanRandom(int epoch)
    {
        var global = GlobalBatchSize;
        var eligible = Enumerable.Range(0, _datasets.Count).Where(d => _datasets[d].Count >= global).ToArray();
        var total = eligible.Sum(d => (long)_datasets[d].Count);
        var random = DeterministicRandom.ForStream(_seed, RandomStream, epoch);
        var batches = new List<(int? Dataset, int[] Indices)>(StepsPerEpoch);
        for (var step = 0; step < StepsPerEpoch; step++)
        {
            var dataset = PickProportional(eligible, d => _datasets[d].Count, total, random);
            var span = _datasets[dataset];
            var drawn = random.SampleWithoutReplacement(span.Count, global);
            for (var i = 0; i < drawn.Length; i++) drawn[i] += span.Offset;
            batches.Add((dataset, drawn));
        }
        return batches;
    }

    private List<(int? Dataset, int[] Indices)> PlanEpochRandom(int epoch)
    {
        var perDataset = Enumerable.Range(0, _datasets.Count).Select(d => Cut(ShuffledIndices(d, EpochRandomStream, epoch), d)).ToArray();
        var remaining = perDataset.Select(b => b.Count).ToArray();
        var next = new int[perDataset.Length];
        var all = Enumerable.Range(0, perDataset.Length).ToArray();
        var random = OrderStream(EpochRandomStream, epoch);
        var batches = new List<(int? Dataset, int[] Indices)>(StepsPerEpoch);
        for (var step = 0; step < StepsPerEpoch; step++)
        {
            var dataset = PickProportional(all, d => remaining[d], remaining.Sum(), random);
            batches.Add(perDataset[dataset][next[dataset]++]);
            remaining[dataset]--;
        }
        return batches;
    }

    /// <summary>A candidate with probability weight/total, by an exact integer draw (no floating point to drift across platforms).</summary>
    private static int PickProportional(int[] candidates, Func<int, long> weight, long total, DeterministicRandom random)
    {
        var ticket = random.NextLong(total);
        foreach (var candidate in candidates)
        {
            ticket -= weight(candidate);
            if (ticket < 0) return candidate;
        }
        throw new InvalidOperationException("weights do not add up to the total");
    }
}
