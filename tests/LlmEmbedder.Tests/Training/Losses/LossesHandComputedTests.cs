using LlmEmbedder.Modeling;
using LlmEmbedder.Training.Losses;
using TorchSharp;
using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Training.Losses;

/// <summary>
/// The losses on one query with a positive and a negative key, against values and gradients worked
/// out by hand (σ = logistic function), plus the error and property checks that need no reference.
/// </summary>
public sealed class LossesHandComputedTests
{
    private const double Tolerance = 1e-6;

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    // q = [1, 0]; positive [2, 0], negative [0, 1]: inner-product scores [2, 0].
    private static Tensor Query() => tensor(new float[] { 1, 0 }, [1, 2], requires_grad: true);

    private static Tensor Keys() => tensor(new float[] { 2, 0, 0, 1 }, [2, 2], requires_grad: true);

    private static readonly EmbeddingSimilarity InnerProduct = new(DenseMetric.Ip, cosTemperature: 0.01);

    [Fact]
    public void ContrastiveWithInnerProductIsSoftplusOfTheMargin()
    {
        using var scope = NewDisposeScope();
        var (q, k) = (Query(), Keys());

        var loss = new ContrastiveLoss(InnerProduct).Compute(q, k);
        loss.backward();

        // CE([2, 0], 0) = ln(1 + e^-2); d/dS = softmax − onehot = [−σ(−2), σ(−2)].
        var s = Sigmoid(-2);
        AssertClose(Math.Log(1 + Math.Exp(-2)), loss.item<float>());
        AssertClose([-2 * s, s], q.grad!);
        AssertClose([-s, 0, s, 0], k.grad!);
    }

    [Fact]
    public void ContrastiveWithCosineNormalisesAndDividesByTheTemperature()
    {
        using var scope = NewDisposeScope();
        var q = tensor(new float[] { 3, 0 }, [1, 2]);
        var k = tensor(new float[] { 1, 1, 0, 2 }, [2, 2]);

        var loss = new ContrastiveLoss(new EmbeddingSimilarity(DenseMetric.Cos, cosTemperature: 0.5)).Compute(q, k);

        // cos = [1/√2, 0], over 0.5 → [√2, 0].
        AssertClose(Math.Log(1 + Math.Exp(-Math.Sqrt(2))), loss.item<float>());
    }

    [Fact]
    public void L2TrainsWithTheInnerProductLikeTheReference()
    {
        using var scope = NewDisposeScope();
        var scores = new EmbeddingSimilarity(DenseMetric.L2, cosTemperature: 0.01).Scores(Query(), Keys());
        AssertClose([2, 0], scores);
    }

    [Fact]
    public void DistillKLMatchesTheClosedForm()
    {
        using var scope = NewDisposeScope();
        var (q, k) = (Query(), Keys());
        var teacher = tensor(new float[] { 1, 0 }, [1, 2]);

        var loss = new DistillKLLoss(InnerProduct, teacherTemperature: 1, studentTemperature: 1).Compute(q, k, teacher);
        loss.backward();

        // p = softmax([1, 0]), r = softmax([2, 0]); KL = Σ p ln(p / r); dKL/dS = r − p.
        double[] p = [Sigmoid(1), Sigmoid(-1)], r = [Sigmoid(2), Sigmoid(-2)];
        AssertClose(p[0] * Math.Log(p[0] / r[0]) + p[1] * Math.Log(p[1] / r[1]), loss.item<float>());
        AssertClose([2 * (r[0] - p[0]), r[1] - p[1]], q.grad!);
        AssertClose([r[0] - p[0], 0, r[1] - p[1], 0], k.grad!);
    }

    [Fact]
    public void DistillKLIsZeroWhenTheTemperedTeacherEqualsTheStudent()
    {
        using var scope = NewDisposeScope();
        var (q, k) = (Query(), Keys());
        // [1, 0] / 0.5 = [2, 0] = the student's scores.
        var teacher = tensor(new float[] { 1, 0 }, [1, 2]);

        var loss = new DistillKLLoss(InnerProduct, teacherTemperature: 0.5, studentTemperature: 1).Compute(q, k, teacher);
        loss.backward();

        AssertClose(0, loss.item<float>());
        AssertClose([0, 0], q.grad!);
    }

    [Fact]
    public void StableDistillWeighsEachRankingStepByTheTeacherSoftmax()
    {
        using var scope = NewDisposeScope();
        var (q, k) = (Query(), Keys());
        var teacher = tensor(new float[] { 1, 0 }, [1, 2]);

        var loss = new StableDistillLoss(InnerProduct).Compute(q, k, teacher);
        loss.backward();

        // Step 0: σ(1)·CE([2, 0], 0). Step 1: the positive is masked, the negative is alone: CE = 0.
        var s = Sigmoid(-2);
        AssertClose(Sigmoid(1) * Math.Log(1 + Math.Exp(-2)), loss.item<float>());
        AssertClose([Sigmoid(1) * -2 * s, Sigmoid(1) * s], q.grad!);
    }

    [Fact]
    public void RetrievalLossWeighsBothLossesOnlyWhenBothAreActive()
    {
        using var scope = NewDisposeScope();
        var teacher = tensor(new float[] { 1, 0 }, [1, 2]);
        var options = new RetrievalLossOptions { DenseMetric = DenseMetric.Ip, ContrastiveWeight = 0.2, DistillWeight = 3 };
        double[] p = [Sigmoid(1), Sigmoid(-1)], r = [Sigmoid(2), Sigmoid(-2)];
        var contrastive = Math.Log(1 + Math.Exp(-2));
        var kl = p[0] * Math.Log(p[0] / r[0]) + p[1] * Math.Log(p[1] / r[1]);

        AssertClose(0.2 * contrastive + 3 * kl, new RetrievalLoss(options).Compute(Query(), Keys(), teacher).item<float>());
        AssertClose(contrastive, new RetrievalLoss(options).Compute(Query(), Keys(), teacherScores: null).item<float>());
        AssertClose(kl, new RetrievalLoss(options with { ContrastiveWeight = 0 }).Compute(Query(), Keys(), teacher).item<float>());
        AssertClose(contrastive, new RetrievalLoss(options with { DistillWeight = 0 }).Compute(Query(), Keys(), teacher).item<float>());
    }

    [Fact]
    public void RetrievalLossWithNothingActiveSaysWhy()
    {
        using var scope = NewDisposeScope();
        var options = new RetrievalLossOptions { ContrastiveWeight = 0, DistillWeight = 1 };

        var noTeacher = Assert.Throws<EmbedderException>(() => new RetrievalLoss(options).Compute(Query(), Keys(), teacherScores: null));
        Assert.Contains("contrastive_weight is 0", noTeacher.Message);
        Assert.Contains("no teacher_scores", noTeacher.Message);

        var teacher = tensor(new float[] { 1, 0 }, [1, 2]);
        var noWeight = Assert.Throws<EmbedderException>(
            () => new RetrievalLoss(options with { DistillWeight = 0 }).Compute(Query(), Keys(), teacher));
        Assert.Contains("distill_weight is 0", noWeight.Message);
    }

    [Fact]
    public void ShapeMismatchesAreRejected()
    {
        using var scope = NewDisposeScope();
        var loss = new ContrastiveLoss(InnerProduct);
        Assert.Throws<ArgumentException>(() => loss.Compute(ones(2, 2), ones(3, 2)));
        Assert.Throws<ArgumentException>(() => loss.Compute(ones(1, 2), ones(2, 3)));
        Assert.Throws<ArgumentException>(() => new StableDistillLoss(InnerProduct).Compute(Query(), Keys(), ones(1, 3)));
        Assert.Throws<EmbedderException>(() => new EmbeddingSimilarity(DenseMetric.Cos, cosTemperature: 0));
    }

    [Fact]
    public void EachRankGetsItsSliceOfTheSingleProcessGradient()
    {
        // Every rank computes the same global loss, and the other shards are constants to it, so the
        // gradient on rank r's shard must equal the rows of the one-process gradient that shard holds.
        using var scope = NewDisposeScope();
        var generator = new Generator(7);
        const int world = 2, batch = 2, group = 3, dim = 4;
        var queryShards = Enumerable.Range(0, world).Select(_ => randn([batch, dim], generator: generator)).ToArray();
        var keyShards = Enumerable.Range(0, world).Select(_ => randn([batch * group, dim], generator: generator)).ToArray();
        var teacherShards = Enumerable.Range(0, world).Select(_ => randn([batch, group], generator: generator)).ToArray();
        var loss = new RetrievalLoss(new RetrievalLossOptions { CosTemperature = 0.05, StableDistill = true });

        var allQueries = cat(queryShards, 0).requires_grad_(true);
        var allKeys = cat(keyShards, 0).requires_grad_(true);
        var single = loss.Compute(allQueries, allKeys, cat(teacherShards, 0));
        single.backward();

        for (var rank = 0; rank < world; rank++)
        {
            var q = queryShards[rank].clone().requires_grad_(true);
            var k = keyShards[rank].clone().requires_grad_(true);
            var global = CrossDeviceBatch.FromShards(rank, q, k, teacherShards[rank], queryShards, keyShards, teacherShards);
            var perRank = loss.Compute(q, k, teacherShards[rank], global);
            perRank.backward();

            AssertClose(single.item<float>(), perRank.item<float>());
            Assert.True(allclose(q.grad!, allQueries.grad!.narrow(0, rank * batch, batch), rtol: 1e-5, atol: 1e-6));
            Assert.True(allclose(k.grad!, allKeys.grad!.narrow(0, rank * batch * group, batch * group), rtol: 1e-5, atol: 1e-6));
        }
    }

    [Fact]
    public void GatheredShardsOfOtherRanksReceiveNoGradient()
    {
        using var scope = NewDisposeScope();
        var local = ones(1, 2).requires_grad_(true);
        var other = ones(1, 2).requires_grad_(true);

        var global = CrossDeviceBatch.WithLocalShard([other, local.detach()], rank: 1, local);
        global.sum().backward();

        Assert.Null(other.grad);
        AssertClose([1, 1], local.grad!);
    }

    private static void AssertClose(double expected, double actual) =>
        Assert.True(Math.Abs(expected - actual) <= Tolerance, $"expected {expected}, got {actual}");

    private static void AssertClose(double[] expected, Tensor actual)
    {
        var values = actual.detach().contiguous().data<float>().ToArray();
        Assert.Equal(expected.Length, values.Length);
        for (var i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - values[i]) <= Tolerance, $"element {i}: expected {expected[i]}, got {values[i]}");
    }
}
