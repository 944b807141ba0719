using LlmEmbedder.Data;

namespace LlmEmbedder.Tests.Data;

/// <summary>Properties docs/REFERENCE.md §5 asks of the batching modes, for B = 4 per device and W = 2 ranks (global batch 8).</summary>
public sealed class BatchSamplerTests
{
    private const int PerDevice = 4, World = 2, Global = PerDevice * World;

    // 103 → 12 batches (7 dropped), 50 → 6 batches (2 dropped), 7 → none.
    private static readonly DatasetSpan[] Spans =
    [
        new("nq", "qa", 0, 103), new("icl", "icl", 103, 50), new("tiny", "tool", 153, 7),
    ];

    private static readonly InBatchSameDataset[] DatasetModes =
        [InBatchSameDataset.Epoch, InBatchSameDataset.EpochStatic, InBatchSameDataset.Random, InBatchSameDataset.EpochRandom];

    public static TheoryData<InBatchSameDataset> AllDatasetModes() => new(DatasetModes);

    private static BatchSampler Sampler(InBatchSameDataset mode, int rank = 0, long seed = 42, IReadOnlyList<DatasetSpan>? spans = null) =>
        new(mode, spans ?? Spans, PerDevice, World, rank, seed);

    private static List<SamplerBatch> Take(IBatchSampler sampler, int count) => Enumerable.Range(0, count).Select(_ => sampler.Next()).ToList();

    private static string Signature(IEnumerable<SamplerBatch> batches) => string.Join("|", batches.Select(b => string.Join(",", b.GlobalIndices)));

    [Theory]
    [MemberData(nameof(AllDatasetModes))]
    public void EveryBatchComesFromOneDataset(InBatchSameDataset mode)
    {
        var sampler = Sampler(mode);
        foreach (var batch in Take(sampler, 3 * sampler.StepsPerEpoch))
        {
            var span = Spans[batch.DatasetIndex!.Value];
            Assert.Equal(Global, batch.GlobalIndices.Length);
            Assert.Equal(Global, batch.GlobalIndices.Distinct().Count());
            Assert.All(batch.GlobalIndices, i => Assert.InRange(i, span.Offset, span.Offset + span.Count - 1));
            Assert.NotEqual("tiny", span.Name);
        }
    }

    [Theory]
    [InlineData(InBatchSameDataset.Epoch)]
    [InlineData(InBatchSameDataset.EpochStatic)]
    [InlineData(InBatchSameDataset.EpochRandom)]
    public void EpochModesVisitEverySampleOnceMinusTheDroppedRemainder(InBatchSameDataset mode)
    {
        var sampler = Sampler(mode);
        Assert.Equal(12 + 6, sampler.StepsPerEpoch);
        for (var epoch = 0; epoch < 3; epoch++)
        {
            var batches = Take(sampler, sampler.StepsPerEpoch);
            Assert.All(batches, b => Assert.Equal((epoch, batches.IndexOf(b)), (b.Epoch, b.StepInEpoch)));
            var seen = batches.SelectMany(b => b.GlobalIndices).ToList();
            Assert.Equal(seen.Count, seen.Distinct().Count());
            Assert.Equal(96, seen.Count(i => i < 103));
            Assert.Equal(48, seen.Count(i => i is >= 103 and < 153));
            Assert.Equal(0, seen.Count(i => i >= 153));
        }
        Assert.Equal((3, 0), (sampler.State.Epoch, sampler.State.StepInEpoch));
    }

    [Fact]
    public void EpochModeDropsADifferentRemainderEachEpoch()
    {
        var sampler = Sampler(InBatchSameDataset.Epoch);
        var dropped = Enumerable.Range(0, 3).Select(_ =>
            string.Join(",", Enumerable.Range(0, 103).Except(Take(sampler, sampler.StepsPerEpoch).SelectMany(b => b.GlobalIndices)).Order())).ToList();
        Assert.Equal(3, dropped.Distinct().Count());
    }

    [Theory]
    [InlineData(InBatchSameDataset.None)]
    [InlineData(InBatchSameDataset.Epoch)]
    [InlineData(InBatchSameDataset.EpochStatic)]
    [InlineData(InBatchSameDataset.Random)]
    [InlineData(InBatchSameDataset.EpochRandom)]
    public void SameSeedSameSequenceDifferentSeedDifferent(InBatchSameDataset mode)
    {
        var spans = mode == InBatchSameDataset.None ? SameTaskSpans : Spans;
        var steps = 2 * Sampler(mode, spans: spans).StepsPerEpoch + 3;
        var first = Signature(Take(Sampler(mode, seed: 42, spans: spans), steps));
        Assert.Equal(first, Signature(Take(Sampler(mode, seed: 42, spans: spans), steps)));
        Assert.NotEqual(first, Signature(Take(Sampler(mode, seed: 43, spans: spans), steps)));
    }

    [Theory]
    [InlineData(InBatchSameDataset.None)]
    [InlineData(InBatchSameDataset.Epoch)]
    [InlineData(InBatchSameDataset.EpochStatic)]
    [InlineData(InBatchSameDataset.Random)]
    [InlineData(InBatchSameDataset.EpochRandom)]
    public void RanksGetDisjointSlicesWhoseUnionIsTheGlobalBatch(InBatchSameDataset mode)
    {
        var spans = mode == InBatchSameDataset.None ? SameTaskSpans : Spans;
        var rank0 = Sampler(mode, rank: 0, spans: spans);
        var rank1 = Sampler(mode, rank: 1, spans: spans);
        for (var step = 0; step < 2 * rank0.StepsPerEpoch; step++)
        {
            var (a, b) = (rank0.Next(), rank1.Next());
            Assert.Equal(a.GlobalIndices, b.GlobalIndices);
            Assert.Equal(a.DatasetIndex, b.DatasetIndex);
            Assert.Equal(PerDevice, a.RankIndices.Length);
            Assert.Empty(a.RankIndices.Intersect(b.RankIndices));
            Assert.Equal(a.GlobalIndices, a.RankIndices.Concat(b.RankIndices));
        }
    }

    [Fact]
    public void EpochStaticKeepsBatchContentsAndReordersThem()
    {
        var sampler = Sampler(InBatchSameDataset.EpochStatic);
        var epochs = Enumerable.Range(0, 3).Select(_ => Take(sampler, sampler.StepsPerEpoch)).ToList();
        string Contents(List<SamplerBatch> epoch) => string.Join("|", epoch.Select(b => string.Join(",", b.GlobalIndices)).Order(StringComparer.Ordinal));
        Assert.Equal(Contents(epochs[0]), Contents(epochs[1]));
        Assert.Equal(Contents(epochs[0]), Contents(epochs[2]));
        Assert.Equal(3, epochs.Select(Signature).Distinct().Count());

        // Plain "epoch" re-cuts the batches every epoch.
        var reshuffled = Sampler(InBatchSameDataset.Epoch);
        Assert.NotEqual(Contents(Take(reshuffled, reshuffled.StepsPerEpoch)), Contents(Take(reshuffled, reshuffled.StepsPerEpoch)));
    }

    [Fact]
    public void RandomModePicksDatasetsProportionallyToSize()
    {
        // 100 and 300 samples: P(first) = 1/4. The 7-sample dataset cannot fill a global batch and is never picked.
        DatasetSpan[] spans = [new("a", "qa", 0, 100), new("b", "icl", 100, 300), new("tiny", "tool", 400, 7)];
        var sampler = Sampler(InBatchSameDataset.Random, spans: spans);
        Assert.Equal(400 / Global, sampler.StepsPerEpoch);
        const int steps = 4000;
        var picks = Take(sampler, steps).Select(b => b.DatasetIndex!.Value).ToList();
        Assert.DoesNotContain(2, picks);
        // Standard deviation of the fraction: sqrt(0.25 · 0.75 / 4000) ≈ 0.0068; allow 4.
        Assert.InRange(picks.Count(p => p == 0) / (double)steps, 0.25 - 4 * 0.0068, 0.25 + 4 * 0.0068);
    }

    [Fact]
    public void RandomModeDrawsEachSampleEquallyOften()
    {
        DatasetSpan[] spans = [new("a", "qa", 0, 40)];
        var sampler = Sampler(InBatchSameDataset.Random, spans: spans);
        var counts = new int[40];
        const int steps = 5000;
        foreach (var batch in Take(sampler, steps))
            foreach (var index in batch.GlobalIndices) counts[index]++;
        // Each sample is in a batch with probability 8/40; the count's standard deviation is sqrt(5000 · 0.2 · 0.8) ≈ 28.
        Assert.All(counts, c => Assert.InRange(c, 1000 - 4 * 28, 1000 + 4 * 28));
    }

    [Fact]
    public void EpochRandomPicksTheFirstBatchProportionallyToRemainingSize()
    {
        // At the start of each cycle the remaining sizes are 12 and 6 batches: P(nq first) = 2/3.
        var sampler = Sampler(InBatchSameDataset.EpochRandom);
        const int epochs = 2000;
        var nqFirst = Enumerable.Range(0, epochs).Count(e => sampler.BatchAt(e, 0).DatasetIndex == 0);
        // Standard deviation sqrt(2/3 · 1/3 / 2000) ≈ 0.0105; allow 4.
        Assert.InRange(nqFirst / (double)epochs, 2.0 / 3 - 4 * 0.0105, 2.0 / 3 + 4 * 0.0105);
    }

    private static readonly DatasetSpan[] SameTaskSpans = [new("nq", "qa", 0, 30), new("msmarco", "qa", 30, 45)];

    [Fact]
    public void NoneModeShufflesAllSamplesTogether()
    {
        var sampler = Sampler(InBatchSameDataset.None, spans: SameTaskSpans);
        Assert.Equal(75 / Global, sampler.StepsPerEpoch);
        var batches = Take(sampler, sampler.StepsPerEpoch);
        Assert.All(batches, b => Assert.Null(b.DatasetIndex));
        var seen = batches.SelectMany(b => b.GlobalIndices).ToList();
        Assert.Equal(72, seen.Distinct().Count());
        // Batches mix the two datasets (the point of shuffling together).
        Assert.Contains(batches, b => b.GlobalIndices.Any(i => i < 30) && b.GlobalIndices.Any(i => i >= 30));
    }

    [Fact]
    public void NoneModeRefusesMixedTasksAndMixedTeacherScores()
    {
        Assert.Equal("mixed tasks in one batch: use --inbatch_same_dataset (datasets: nq = qa, icl = icl, tiny = tool)",
            Assert.Throws<EmbedderException>(() => Sampler(InBatchSameDataset.None)).Message);
        DatasetSpan[] scores = [new("nq", "qa", 0, 30, HasTeacherScores: true), new("msmarco", "qa", 30, 45)];
        Assert.Equal("mixed teacher_scores in one batch: use --inbatch_same_dataset (with teacher_scores: nq; without: msmarco)",
            Assert.Throws<EmbedderException>(() => Sampler(InBatchSameDataset.None, spans: scores)).Message);
    }

    [Theory]
    [InlineData(InBatchSameDataset.None)]
    [InlineData(InBatchSameDataset.Epoch)]
    [InlineData(InBatchSameDataset.EpochStatic)]
    [InlineData(InBatchSameDataset.Random)]
    [InlineData(InBatchSameDataset.EpochRandom)]
    public void ResumeFromSavedStateContinuesTheIdenticalSequence(InBatchSameDataset mode)
    {
        var spans = mode == InBatchSameDataset.None ? SameTaskSpans : Spans;
        var uninterrupted = Sampler(mode, rank: 1, spans: spans);
        var steps = uninterrupted.StepsPerEpoch;
        var expected = Take(uninterrupted, 3 * steps);

        // Stop mid-way through the second epoch, save through JSON, resume in a fresh sampler.
        var first = Sampler(mode, rank: 1, spans: spans);
        var beforeStop = Take(first, steps + 5);
        var saved = first.State.ToJson();
        var resumed = Sampler(mode, rank: 1, spans: spans);
        resumed.Restore(BatchSamplerState.FromJson(saved));
        var after = Take(resumed, 2 * steps - 5);

        Assert.Equal(Signature(expected), Signature(beforeStop.Concat(after)));
        Assert.Equal(expected.Select(b => string.Join(",", b.RankIndices)), beforeStop.Concat(after).Select(b => string.Join(",", b.RankIndices)));
        Assert.Equal(expected.Select(b => (b.Epoch, b.StepInEpoch)), beforeStop.Concat(after).Select(b => (b.Epoch, b.StepInEpoch)));
    }

    [Fact]
    public void SavedStateIsASmallJsonRecord()
    {
        var sampler = Sampler(InBatchSameDataset.Epoch);
        Take(sampler, 20);
        var state = sampler.State;
        Assert.Equal(new BatchSamplerState("epoch", 42, World, PerDevice, "nq:103;icl:50;tiny:7", 1, 2), state);
        Assert.Equal(state, BatchSamplerState.FromJson(state.ToJson()));
        Assert.Contains("\"step_in_epoch\": 2", state.ToJson());
    }

    [Fact]
    public void ResumeRefusesAChangedSetup()
    {
        var state = Sampler(InBatchSameDataset.Epoch).State;
        var otherWorld = new BatchSampler(InBatchSameDataset.Epoch, Spans, PerDevice, 1, 0, 42);
        Assert.Equal("cannot resume the data order: it was saved with world size 2, this run has 1",
            Assert.Throws<EmbedderException>(() => otherWorld.Restore(state)).Message);
        Assert.Equal("cannot resume the data order: it was saved with inbatch_same_dataset epoch, this run has random",
            Assert.Throws<EmbedderException>(() => Sampler(InBatchSameDataset.Random).Restore(state)).Message);
        Assert.Equal("cannot resume the data order: it was saved with datasets (name:samples) nq:103;icl:50;tiny:7, this run has nq:103;icl:51",
            Assert.Throws<EmbedderException>(() => Sampler(InBatchSameDataset.Epoch, spans: [Spans[0], Spans[1] with { Count = 51 }]).Restore(state)).Message);
        Assert.StartsWith("state.json: not a sampler state", Assert.Throws<EmbedderException>(() => BatchSamplerState.FromJson("{\"epoch\": \"x\"}", "state.json")).Message);
    }

    [Fact]
    public void TooFewSamplesForOneGlobalBatchIsAnError()
    {
        Assert.Equal("not enough training samples for one global batch of 8 (per_device_train_batch_size 4 × 2 processes): no dataset has that many (largest: b with 7)",
            Assert.Throws<EmbedderException>(() => Sampler(InBatchSameDataset.Epoch, spans: [new("a", "qa", 0, 5), new("b", "qa", 5, 7)])).Message);
        Assert.Equal("not enough training samples for one global batch of 8 (per_device_train_batch_size 4 × 2 processes): only 7 samples in all",
            Assert.Throws<EmbedderException>(() => Sampler(InBatchSameDataset.None, spans: [new("a", "qa", 0, 3), new("b", "qa", 3, 4)])).Message);
    }

    [Fact]
    public void ModeNamesAreTheFlagValues()
    {
        Assert.Equal(["none", "epoch", "epoch-static", "random", "epoch-random"], InBatchSameDatasetNames.Names);
        Assert.Equal(InBatchSameDataset.EpochStatic, InBatchSameDatasetNames.Parse("epoch-static"));
        Assert.Equal("inbatch_same_dataset \"epochs\" is not one of none | epoch | epoch-static | random | epoch-random",
            Assert.Throws<EmbedderException>(() => InBatchSameDatasetNames.Parse("epochs")).Message);
    }
}
