using LlmEmbedder.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LlmEmbedder.Training;

/// <summary>
/// Mixed precision by hand (TorchSharp has no autocast): the optimizer owns fp32 master weights; forward and
/// backward run on a copy in the compute dtype (bf16), refreshed from the masters before each step, whose
/// gradients are handed back to the masters in fp32. With fp32 compute there is no copy.
/// </summary>
public sealed class MixedPrecisionModel : IDisposable
{
    private readonly List<(Parameter Master, Parameter Compute)> pairs;

    public BertModel Master { get; }
    public BertModel Compute { get; }
    public ScalarType ComputeDtype { get; }

    public MixedPrecisionModel(BertModel master, ScalarType computeDtype)
    {
        Master = master;
        ComputeDtype = computeDtype;
        if (computeDtype == ScalarType.Float32)
        {
            Compute = master;
            pairs = [];
            return;
        }
        Compute = new BertModel(master.Config);
        Compute.to(computeDtype);
        var computeParameters = Compute.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        pairs = master.named_parameters().Select(p => (p.parameter, computeParameters[p.name])).ToList();
        SyncFromMaster();
    }

    public static ScalarType ParseDtype(string name) => name.ToLowerInvariant() switch
    {
        "fp32" or "float32" => ScalarType.Float32,
        // fp16 has no fast CPU kernels; bf16 has the same memory saving and fp32's range.
        "bf16" or "bfloat16" or "fp16" or "float16" => ScalarType.BFloat16,
        _ => throw new EmbedderException($"unknown --dtype '{name}' (fp32, bf16 or fp16)"),
    };

    public void Train(bool on)
    {
        Master.train(on);
        Compute.train(on);
    }

    /// <summary>Copies the fp32 masters into the compute copy (after each optimizer step).</summary>
    public void SyncFromMaster()
    {
        using var _ = no_grad();
        foreach (var (master, compute) in pairs) compute.copy_(master);
    }

    /// <summary>Moves the compute copy's gradients onto the masters, in fp32, and clears the copy's.</summary>
    public void MoveGradientsToMaster()
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        foreach (var (master, compute) in pairs)
        {
            if (compute.grad is not { } grad) continue;
            if (master.grad is { } existing) existing.add_(grad.to(ScalarType.Float32));
            else master.grad = grad.to(ScalarType.Float32);
            compute.grad = null;
        }
    }

    public void Dispose()
    {
        if (!ReferenceEquals(Compute, Master)) Compute.Dispose();
    }
}
