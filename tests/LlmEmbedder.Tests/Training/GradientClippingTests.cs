using LlmEmbedder.Modeling;
using LlmEmbedder.Tests.Cli;
using LlmEmbedder.Training;
using LlmEmbedder.Training.Losses;
using LlmEmbedder.Training.Optimization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Training;

/// <summary>
/// --max_grad_norm as the Hugging Face Trainer applies it, on gradients whose norm is known by hand: [3, 4] and [12]
/// have the total L2 norm 13.
/// </summary>
public sealed class GradientClippingTests
{
    private static (Parameter First, Parameter Second) WithGradients(float scale = 1)
    {
        var first = new Parameter(zeros(2));
        var second = new Parameter(zeros(1));
        first.grad = tensor(new[] { 3f * scale, 4f * scale });
        second.grad = tensor(new[] { 12f * scale });
        return (first, second);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    public void ZeroOrNegativeMaxNormLeavesTheGradientsAloneAndReportsTheirNorm(double maxNorm)
    {
        using var scope = NewDisposeScope();
        var (first, second) = WithGradients();
        // torch's own clip_grad_norm_ with 0 scales every gradient to zero: the defect this guards against.
        var (firstCopy, secondCopy) = WithGradients();
        nn.utils.clip_grad_norm_([firstCopy, secondCopy], 0.0);
        Assert.Equal(new[] { 0f, 0f }, firstCopy.grad!.data<float>().ToArray());

        double norm = GradientClipping.Clip([first, second], maxNorm);

        Assert.Equal(13.0, norm, 6);
        Assert.Equal(new[] { 3f, 4f }, first.grad!.data<float>().ToArray());
        Assert.Equal(new[] { 12f }, second.grad!.data<float>().ToArray());
    }

    [Fact]
    public void PositiveMaxNormClipsToItAndReportsTheNormBefore()
    {
        using var scope = NewDisposeScope();
        var (first, second) = WithGradients();

        double norm = GradientClipping.Clip([first, second], 6.5);

        Assert.Equal(13.0, norm, 5);
        // Scaled by 6.5 / 13 (torch adds 1e-6 to the norm).
        Assert.Equal(1.5, first.grad!.data<float>()[0], 4);
        Assert.Equal(2.0, first.grad!.data<float>()[1], 4);
        Assert.Equal(6.0, second.grad!.data<float>()[0], 4);
    }

    [Fact]
    public void ANormBelowTheMaximumIsNotChanged()
    {
        using var scope = NewDisposeScope();
        var (first, second) = WithGradients();
        Assert.Equal(13.0, GradientClipping.Clip([first, second], 100), 5);
        Assert.Equal(new[] { 3f, 4f }, first.grad!.data<float>().ToArray());
    }

    [Theory]
    [InlineData(float.NaN, 1.0)]
    [InlineData(float.PositiveInfinity, 1.0)]
    [InlineData(float.NaN, 0.0)]
    public void NonFiniteGradientsGiveANonFiniteNormForTheStepToStopOn(float scale, double maxNorm)
    {
        using var scope = NewDisposeScope();
        var (first, second) = WithGradients(scale);
        Assert.False(double.IsFinite(GradientClipping.Clip([first, second], maxNorm)));
    }

    /// <summary>
    /// Two training steps with max_grad_norm 0 move the weights exactly as AdamW written out here does on the raw
    /// gradients (Loshchilov and Hutter's decoupled decay, Hugging Face's groups: no decay on biases and LayerNorm);
    /// with max_grad_norm 1 the same steps land elsewhere (the norms are far above 1 and differ between the steps, so
    /// clipping changes the second step's Adam ratio).
    /// </summary>
    [Fact]
    public void MaxGradNormZeroTrainsAsUnclippedAdamW()
    {
        const double learningRate = 1e-3, weightDecay = 0.01, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
        var dir = TestPaths.NewTempDir("max-grad-norm");
        try
        {
            var model = CliProcess.TinyChineseModel(dir, layers: 1, dropout: 0.0);
            DenseRetriever NewRetriever() => new(SentenceEncoder.Load(model, new EncoderSpec { QueryMaxLength = 16, KeyMaxLength = 24, Pooling = PoolingMethod.Mean }),
                keyEncoder: null, new RetrieverOptions());
            var loss = new RetrievalLossOptions { ContrastiveWeight = 1.0, CosTemperature = 0.02 };
            RetrievalBatch Batch(DenseRetriever retriever, int step) => retriever.Tokenize(
                Enumerable.Range(0, 4).Select(i => $"问题{step}号{i}关于长城").ToList(),
                Enumerable.Range(0, 16).Select(i => $"第{i * step}段资料讲述{(i % 3 == 0 ? "长城的历史" : "西湖和茶叶")}").ToList(), null, loss);

            using var reference = NewRetriever();
            var moments = reference.Parameters.ToDictionary(p => p.Name, p => (M: zeros_like(p.Parameter), V: zeros_like(p.Parameter)));
            for (int step = 1; step <= 2; step++)
            {
                foreach (var (_, parameter) in reference.Parameters) parameter.grad = null;
                reference.ForwardBackward(Batch(reference, step), 1);
                using var _ = no_grad();
                foreach (var (name, parameter) in reference.Parameters)
                {
                    var gradient = parameter.grad!;
                    var (m, v) = moments[name];
                    m.mul_(beta1).add_(gradient, alpha: 1 - beta1);
                    v.mul_(beta2).add_(gradient.square(), alpha: 1 - beta2);
                    bool decays = !name.EndsWith("bias", StringComparison.Ordinal) && !name.Contains("LayerNorm", StringComparison.Ordinal);
                    if (decays) parameter.mul_(1 - learningRate * weightDecay);
                    var mHat = m / (1 - Math.Pow(beta1, step));
                    var vHat = v / (1 - Math.Pow(beta2, step));
                    parameter.sub_(mHat / (vHat.sqrt() + eps) * learningRate);
                }
            }

            (Dictionary<string, float[]> Weights, double[] Norms) Train(double maxGradNorm)
            {
                using var retriever = NewRetriever();
                using var trainingStep = new TrainingStep(retriever, new TrainingStepOptions { LearningRate = learningRate, WeightDecay = weightDecay, MaxGradNorm = maxGradNorm });
                var norms = Enumerable.Range(1, 2).Select(step => trainingStep.Run(step, [Batch(retriever, step)], learningRate).GradNorm).ToArray();
                return (retriever.Parameters.ToDictionary(p => p.Name, p => p.Parameter.data<float>().ToArray()), norms);
            }

            var expected = reference.Parameters.ToDictionary(p => p.Name, p => p.Parameter.data<float>().ToArray());
            var unclipped = Train(0);
            var clipped = Train(1);
            // The attention key bias is left out: its gradient is zero up to rounding (softmax ignores a shift shared by
            // every key), and Adam divides that noise by its own size, so either implementation's rounding decides it.
            double Largest(Dictionary<string, float[]> weights) => expected.Where(p => !p.Key.EndsWith("attention.self.key.bias", StringComparison.Ordinal))
                .Max(p => p.Value.Zip(weights[p.Key], (a, b) => Math.Abs(a - b)).Max());

            Assert.True(unclipped.Norms.All(n => n > 2) && Math.Abs(unclipped.Norms[0] / unclipped.Norms[1] - 1) > 0.1,
                $"gradient norms {string.Join(", ", unclipped.Norms)}: clipping at 1 would not change the second step");
            // A few float32 steps of a weight near 1 (LayerNorm's): the two implementations round differently.
            Assert.True(Largest(unclipped.Weights) <= 5e-7, $"max_grad_norm 0: weights differ from unclipped AdamW by {Largest(unclipped.Weights):E2}");
            Assert.True(Largest(clipped.Weights) > 0.1 * learningRate, $"max_grad_norm 1: weights differ from unclipped AdamW by only {Largest(clipped.Weights):E2}");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
