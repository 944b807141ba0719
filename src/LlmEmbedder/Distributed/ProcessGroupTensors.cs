using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LlmEmbedder.Distributed;

/// <summary>The collectives on tensors: float32, on the CPU, as data-parallel training uses them.</summary>
public static class ProcessGroupTensors
{
    /// <summary>Every rank's <paramref name="local"/> (same shape on all ranks), in rank order; detached copies.</summary>
    public static Tensor[] AllGather(this IProcessGroup group, Tensor local)
    {
        using var scope = NewDisposeScope();
        var send = Contiguous32(local);
        var all = empty([group.WorldSize, .. local.shape], ScalarType.Float32);
        group.AllGather(Floats(send), Floats(all));
        var shards = all.unbind(0);
        foreach (var shard in shards) shard.MoveToOuterDisposeScope();
        return shards;
    }

    /// <summary>Replaces a float32 contiguous tensor by its element-wise mean over all ranks.</summary>
    public static void AllReduceMean(this IProcessGroup group, Tensor tensor)
    {
        if (tensor.dtype != ScalarType.Float32 || !tensor.is_contiguous() || tensor.device_type != DeviceType.CPU)
            throw new ArgumentException("all-reduce needs a contiguous float32 CPU tensor");
        if (group.WorldSize == 1) return;
        group.AllReduceSum(Floats(tensor));
        using var _ = no_grad();
        tensor.div_(group.WorldSize);
    }

    /// <summary>The mean of a scalar over all ranks.</summary>
    public static double AllReduceMean(this IProcessGroup group, double value)
    {
        Span<double> buffer = [value];
        group.AllReduceSum(buffer);
        return buffer[0] / group.WorldSize;
    }

    /// <summary>
    /// Averages the gradients of <paramref name="parameters"/> over all ranks, as DistributedDataParallel does, in
    /// one all-reduce: the gradients are flattened into one float32 buffer. Every rank must have gradients on the
    /// same parameters (they run the same model on the same kind of batch); the count is checked in the same call.
    /// </summary>
    public static void AllReduceMeanGradients(this IProcessGroup group, IEnumerable<Parameter> parameters)
    {
        if (group.WorldSize == 1) return;
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var grads = parameters.Select(p => p.grad).OfType<Tensor>().ToList();
        if (grads.Any(g => g.dtype != ScalarType.Float32))
            throw new ArgumentException("gradients are all-reduced in float32 (on the fp32 master weights)");
        // The counts first, in a call of the same size everywhere: buffers of different lengths in one all-reduce would
        // be undefined behaviour, not an error.
        Span<float> count = [grads.Count];
        group.AllReduceSum(count);
        if (count[0] != (float)grads.Count * group.WorldSize)
            throw new InvalidOperationException($"ranks disagree on which parameters have gradients ({grads.Count} here, {count[0]} in all over {group.WorldSize} ranks)");
        var flat = cat([.. grads.Select(g => g.reshape(-1))]);
        group.AllReduceSum(Floats(flat));
        flat.div_(group.WorldSize);
        long offset = 0;
        foreach (var grad in grads)
        {
            grad.copy_(flat.narrow(0, offset, grad.numel()).view_as(grad));
            offset += grad.numel();
        }
    }

    private static Tensor Contiguous32(Tensor tensor)
    {
        if (tensor.device_type != DeviceType.CPU) throw new ArgumentException("collectives run on CPU tensors");
        return tensor.detach().to(ScalarType.Float32).contiguous();
    }

    private static Span<float> Floats(Tensor tensor) => MemoryMarshal.Cast<byte, float>(tensor.bytes);
}
