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
}
