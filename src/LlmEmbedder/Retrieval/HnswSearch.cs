using System.Runtime.InteropServices;

namespace LlmEmbedder.Retrieval;

/// <summary>How the HNSW graph is built and searched (USearch's parameters; its defaults).</summary>
public sealed record HnswOptions
{
    /// <summary>Links per node (HNSW's M).</summary>
    public int Connectivity { get; init; } = 16;

    /// <summary>Candidates considered while inserting a row (efConstruction).</summary>
    public int ExpansionAdd { get; init; } = 128;

    /// <summary>Candidates considered per query (ef); at least k is used.</summary>
    public int ExpansionSearch { get; init; } = 64;

    public int Threads { get; init; } = Environment.ProcessorCount;
}

/// <summary>
/// Approximate inner-product search over an HNSW graph (USearch, through its C API). The graph is built in
/// parallel, queries are searched in parallel, and the hits' scores are recomputed by <see cref="ExactSearch"/>'s
/// own dot product, so a row found by both gets the same score, and ties rank by <see cref="ScoreOrder"/>. A query may get fewer than min(k, N) hits when the graph does not reach them.
/// </summary>
public static partial class HnswSearch
{
    /// <summary>Builds a graph over <paramref name="corpus"/> and searches it once.</summary>
    public static SearchResult Search(
        float[] queries, float[] corpus, int dimension, int k, HnswOptions? options = null, CancellationToken cancellationToken = default)
    {
        using var index = HnswIndex.Build(corpus, dimension, options, cancellationToken);
        return index.Search(queries, k, cancellationToken);
    }
}

/// <summary>An HNSW graph over a corpus matrix, built once and searched any number of times (see <see cref="HnswSearch"/>).</summary>
public sealed class HnswIndex : IDisposable
{
    private readonly HnswSearch.UsearchIndex index;
    private readonly float[] corpus;
    private readonly HnswOptions options;

    private HnswIndex(HnswSearch.UsearchIndex index, float[] corpus, int dimension, HnswOptions options)
    {
        this.index = index;
        this.corpus = corpus;
        this.options = options;
        Dimension = dimension;
    }

    public int Dimension { get; }
    public int Rows => corpus.Length / Dimension;

    /// <param name="corpus">[N, dimension] row-major; kept (not copied) to recompute the hits' scores.</param>
    public static HnswIndex Build(float[] corpus, int dimension, HnswOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new HnswOptions();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimension);
        if (corpus.Length % dimension != 0)
            throw new ArgumentException($"{corpus.Length} corpus values are not rows of {dimension}", nameof(corpus));
        int rows = corpus.Length / dimension;
        var index = new HnswSearch.UsearchIndex(dimension, options);
        try
        {
            index.Reserve(rows);
            Parallel.For(0, rows, new ParallelOptions { MaxDegreeOfParallelism = options.Threads, CancellationToken = cancellationToken },
                row => index.Add((ulong)row, corpus.AsSpan(row * dimension, dimension)));
            return new HnswIndex(index, corpus, dimension, options);
        }
        catch
        {
            index.Dispose();
            throw;
        }
    }

    /// <summary>Candidates considered per query from now on (ef): more is slower and finds more of the true top-k.</summary>
    public void ChangeExpansionSearch(int expansion)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(expansion);
        index.ChangeExpansionSearch(expansion);
    }

    /// <summary>The top-k rows of each query, best first, with exact scores.</summary>
    public SearchResult Search(float[] queries, int k, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        if (queries.Length % Dimension != 0)
            throw new ArgumentException($"{queries.Length} query values are not rows of {Dimension}", nameof(queries));
        int queryCount = queries.Length / Dimension, dimension = Dimension;
        int wanted = Math.Min(k, Rows);
        var indices = new int[queryCount][];
        var scores = new float[queryCount][];
        Parallel.For(0, queryCount, new ParallelOptions { MaxDegreeOfParallelism = options.Threads, CancellationToken = cancellationToken },
            () => (Keys: new ulong[Math.Max(wanted, 1)], Distances: new float[Math.Max(wanted, 1)]),
            (q, _, buffers) =>
            {
                var query = queries.AsSpan(q * dimension, dimension);
                int found = wanted == 0 ? 0 : index.Search(query, buffers.Keys.AsSpan(0, wanted), buffers.Distances.AsSpan(0, wanted));
                var hits = new (float Score, int Index)[found];
                for (int i = 0; i < found; i++)
                {
                    int row = checked((int)buffers.Keys[i]);
                    hits[i] = (ExactSearch.Dot(query, corpus.AsSpan(row * dimension, dimension)), row);
                }
                Array.Sort(hits, ScoreOrder.Compare);
                indices[q] = hits.Select(h => h.Index).ToArray();
                scores[q] = hits.Select(h => h.Score).ToArray();
                return buffers;
            },
            _ => { });
        return new SearchResult(indices, scores);
    }

    public void Dispose() => index.Dispose();
}

public static partial class HnswSearch
{
    /// <summary>
    /// The few calls of USearch's C API (usearch.h) we need. The package's managed wrapper reserves capacity inside
    /// every Add, which makes concurrent inserts unsafe; reserving once up front makes them safe.
    /// </summary>
    internal sealed partial class UsearchIndex : IDisposable
    {
        private const string Library = "libusearch_c";
        private const int MetricInnerProduct = 2; // usearch_metric_ip_k: distance = 1 - dot
        private const int ScalarFloat32 = 1; // usearch_scalar_f32_k

        private IntPtr handle;

        public UsearchIndex(int dimension, HnswOptions options)
        {
            var init = new InitOptions
            {
                MetricKind = MetricInnerProduct,
                Quantization = ScalarFloat32,
                Dimensions = (nuint)dimension,
                Connectivity = (nuint)options.Connectivity,
                ExpansionAdd = (nuint)options.ExpansionAdd,
                ExpansionSearch = (nuint)options.ExpansionSearch,
            };
            handle = usearch_init(ref init, out var error);
            Check(error);
        }

        public void Reserve(int rows)
        {
            usearch_reserve(handle, (nuint)rows, out var error);
            Check(error);
        }

        public void ChangeExpansionSearch(int expansion)
        {
            usearch_change_expansion_search(handle, (nuint)expansion, out var error);
            Check(error);
        }

        public unsafe void Add(ulong key, ReadOnlySpan<float> vector)
        {
            IntPtr error;
            fixed (float* data = vector) usearch_add(handle, key, data, ScalarFloat32, out error);
            Check(error);
        }

        /// <returns>How many hits were written, best (smallest distance) first.</returns>
        public unsafe int Search(ReadOnlySpan<float> query, Span<ulong> keys, Span<float> distances)
        {
            nuint found;
            IntPtr error;
            fixed (float* data = query)
            fixed (ulong* keyData = keys)
            fixed (float* distanceData = distances)
                found = usearch_search(handle, data, ScalarFloat32, (nuint)keys.Length, keyData, distanceData, out error);
            Check(error);
            return (int)found;
        }

        public void Dispose()
        {
            if (handle == IntPtr.Zero) return;
            usearch_free(handle, out _);
            handle = IntPtr.Zero;
        }

        private static void Check(IntPtr error)
        {
            if (error != IntPtr.Zero) throw new EmbedderException($"USearch: {Marshal.PtrToStringUTF8(error)}");
        }

        [StructLayout(LayoutKind.Sequential)]
        private struct InitOptions
        {
            public int MetricKind;
            public IntPtr Metric;
            public int Quantization;
            public nuint Dimensions;
            public nuint Connectivity;
            public nuint ExpansionAdd;
            public nuint ExpansionSearch;
            public byte Multi;
        }

        [LibraryImport(Library)]
        private static partial IntPtr usearch_init(ref InitOptions options, out IntPtr error);

        [LibraryImport(Library)]
        private static partial void usearch_free(IntPtr index, out IntPtr error);

        [LibraryImport(Library)]
        private static partial void usearch_reserve(IntPtr index, nuint capacity, out IntPtr error);

        [LibraryImport(Library)]
        private static partial void usearch_change_expansion_search(IntPtr index, nuint expansion, out IntPtr error);

        [LibraryImport(Library)]
        private static unsafe partial void usearch_add(IntPtr index, ulong key, float* vector, int vectorKind, out IntPtr error);

        [LibraryImport(Library)]
        private static unsafe partial nuint usearch_search(
            IntPtr index, float* query, int queryKind, nuint count, ulong* keys, float* distances, out IntPtr error);
    }
}
