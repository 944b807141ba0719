using LlmEmbedder.Modeling;
using System.Text.Json;
using LlmEmbedder.Training.Losses;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using static LlmEmbedder.Tests.Training.Losses.LossesReference;

namespace LlmEmbedder.Tests.Training.Losses;

/// <summary>
/// Each loss against the values and gradients PyTorch 1.13 computes for the same inputs
/// (tests/reference/losses_reference.py, an independent PyTorch implementation of docs/REFERENCE.md §4).
/// </summary>
public sealed class LossesCompareToPyTorchTests(ITestOutputHelper output)
{
    public static TheoryData<string> SimilarityCases => CaseNames("similarity");

    public static TheoryData<string> SingleCases => CaseNames("single");

    public static TheoryData<string> CrossDeviceCases => CaseNames("cross_device");

    [Theory]
    [MemberData(nameof(SimilarityCases))]
    public void ScoresMatchPyTorch(string name)
    {
        var reference = Case("similarity", name);
        using var scope = NewDisposeScope();
        var inputs = Root.GetProperty("inputs");
        var similarity = new EmbeddingSimilarity(
            ParseMetric(reference.GetProperty("metric").GetString()!), reference.GetProperty("cos_temperature").GetDouble());

        var scores = similarity.Scores(Matrix(inputs.GetProperty("queries")), Matrix(inputs.GetProperty("keys")));

        var error = MaxError(scores, reference.GetProperty("scores"));
        output.WriteLine($"{name}: max error {error:E2}");
        Assert.True(error <= Tolerance, $"{name}: scores differ from PyTorch by {error:E2}");
    }

    [Theory]
    [MemberData(nameof(SingleCases))]
    public void LossAndGradientsMatchPyTorch(string name)
    {
        var reference = Case("single", name);
        var config = reference.GetProperty("config");
        var options = Options(config);
        using var scope = NewDisposeScope();
        var inputs = Root.GetProperty("inputs");
        var queries = Matrix(inputs.GetProperty("queries"), requiresGrad: true);
        var keys = Matrix(inputs.GetProperty("keys"), requiresGrad: true);
        var teacher = config.GetProperty("use_teacher").GetBoolean() ? Matrix(inputs.GetProperty("teacher_scores")) : null;
        var similarity = new EmbeddingSimilarity(options.DenseMetric, options.CosTemperature);

        var loss = reference.GetProperty("kind").GetString() switch
        {
            "contrastive" => new ContrastiveLoss(similarity).Compute(queries, keys),
            "distill_kl" => new DistillKLLoss(similarity, options.TeacherTemperature, options.StudentTemperature).Compute(queries, keys, teacher!),
            "stable_distill" => new StableDistillLoss(similarity).Compute(queries, keys, teacher!),
            "retrieval" => new RetrievalLoss(options).Compute(queries, keys, teacher),
            var kind => throw new InvalidDataException($"unknown kind {kind}"),
        };
        loss.backward();

        AssertMatches(name, loss, queries, keys, reference);
    }

    [Theory]
    [MemberData(nameof(CrossDeviceCases))]
    public void TwoSimulatedRanksMatchPyTorch(string name)
    {
        var reference = Case("cross_device", name);
        var config = reference.GetProperty("config");
        var loss = new RetrievalLoss(Options(config));
        var useTeacher = config.GetProperty("use_teacher").GetBoolean();
        var rankInputs = Root.GetProperty("cross_device").GetProperty("ranks").EnumerateArray().ToArray();
        var rankResults = reference.GetProperty("ranks").EnumerateArray().ToArray();
        Assert.Equal(2, rankInputs.Length);

        for (var rank = 0; rank < rankInputs.Length; rank++)
        {
            using var scope = NewDisposeScope();
            // What an all-gather hands every rank: each rank's tensors, without autograd history.
            var gatheredQueries = rankInputs.Select(r => Matrix(r.GetProperty("queries"))).ToArray();
            var gatheredKeys = rankInputs.Select(r => Matrix(r.GetProperty("keys"))).ToArray();
            var gatheredTeacher = useTeacher ? rankInputs.Select(r => Matrix(r.GetProperty("teacher_scores"))).ToArray() : null;
            var queries = Matrix(rankInputs[rank].GetProperty("queries"), requiresGrad: true);
            var keys = Matrix(rankInputs[rank].GetProperty("keys"), requiresGrad: true);
            var teacher = useTeacher ? Matrix(rankInputs[rank].GetProperty("teacher_scores")) : null;

            var global = CrossDeviceBatch.FromShards(rank, queries, keys, teacher, gatheredQueries, gatheredKeys, gatheredTeacher);
            var value = loss.Compute(queries, keys, teacher, global);
            value.backward();

            AssertMatches($"{name} rank {rank}", value, queries, keys, rankResults[rank]);
        }
    }

    private void AssertMatches(string label, Tensor loss, Tensor queries, Tensor keys, JsonElement reference)
    {
        Assert.Empty(loss.shape);
        var expectedLoss = reference.GetProperty("loss").GetDouble();
        var valueError = Error(loss.item<float>(), expectedLoss);
        var (queryGradError, queryGradAbsolute) = MaxErrors(queries.grad!, reference.GetProperty("grad_queries"));
        var (keyGradError, keyGradAbsolute) = MaxErrors(keys.grad!, reference.GetProperty("grad_keys"));
        output.WriteLine(
            $"{label}: loss {loss.item<float>()} vs {expectedLoss} (error {valueError:E2}, abs {Math.Abs(loss.item<float>() - expectedLoss):E2}), "
            + $"grad q error {queryGradError:E2} (abs {queryGradAbsolute:E2}), grad k error {keyGradError:E2} (abs {keyGradAbsolute:E2})");
        Assert.True(valueError <= Tolerance, $"{label}: loss differs from PyTorch by {valueError:E2}");
        Assert.True(queryGradError <= Tolerance, $"{label}: query gradient differs from PyTorch by {queryGradError:E2}");
        Assert.True(keyGradError <= Tolerance, $"{label}: key gradient differs from PyTorch by {keyGradError:E2}");
    }
}
