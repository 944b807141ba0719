namespace LlmEmbedder.Distributed;

/// <summary>A job of one process: every collective is the identity.</summary>
public sealed class SingleProcess : IProcessGroup
{
    public int Rank => 0;
    public int WorldSize => 1;
    public bool StartupAgreed { get; private set; }
    public bool StartupFailed { get; private set; }

    public void AllReduceSum(Span<float> values) { }

    public void AllReduceSum(Span<double> values) { }

    public void AllGather(ReadOnlySpan<float> local, Span<float> all)
    {
        if (all.Length != local.Length) throw new ArgumentException($"all-gather of {local.Length} values into {all.Length}");
        local.CopyTo(all);
    }

    public void Broadcast(Span<byte> buffer, int root) => ArgumentOutOfRangeException.ThrowIfNotEqual(root, 0);

    public void Barrier() { }

    public int? AgreeOnStartup(bool failedHere)
    {
        StartupAgreed = true;
        StartupFailed = failedHere;
        return failedHere ? 0 : null;
    }

    public void Abort(int exitCode) => Environment.Exit(exitCode);

    public void Dispose() { }
}
