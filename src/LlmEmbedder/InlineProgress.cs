namespace LlmEmbedder;

/// <summary>Reports on the calling thread, in order (Progress&lt;T&gt; posts to the thread pool, so lines could interleave or arrive late).</summary>
public sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
