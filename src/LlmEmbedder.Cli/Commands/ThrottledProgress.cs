using System.Diagnostics;

namespace LlmEmbedder.Cli.Commands;

/// <summary>
/// Progress for long commands: written on the calling thread (Progress&lt;T&gt; posts to the thread pool, out of
/// order), at most every 2 seconds, and always for the last report. The writer gets the time since the start.
/// </summary>
internal sealed class ThrottledProgress<T>(Func<T, bool> isLast, Action<T, TimeSpan> write) : IProgress<T>
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);
    private readonly Stopwatch clock = Stopwatch.StartNew();
    private TimeSpan lastWrite = TimeSpan.Zero;

    public void Report(T value)
    {
        if (clock.Elapsed - lastWrite < Interval && !isLast(value)) return;
        lastWrite = clock.Elapsed;
        write(value, clock.Elapsed);
    }
}
