using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LlmEmbedder.Retrieval;

/// <summary>How <see cref="ExactSearch"/> splits its work.</summary>
public sealed record ExactSearchOptions
{
    /// <summary>Corpus rows scored at once. With <see cref="QueryBlockRows"/> it bounds the score buffer of each thread
    /// to QueryBlockRows × CorpusChunkRows floats, whatever the corpus size.</summary>
    public int CorpusChunkRows { get; init; } = 1024;

    /// <summary>Queries searched together by one thread (their vectors stay in cache while the corpus streams past).</summary>
    public int QueryBlockRows { get; init; } = 128;

    /// <summary>Threads working on separate query blocks.</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;
}

/// <summary>
/// Exact (brute-force) inner-product search: the top-k corpus rows of each query. Callers L2-normalise both sides
/// for cosine. Never builds the full score matrix: each thread scores a block of queries against one corpus chunk
/// at a time and keeps a running top-k per query.
/// </summary>
/// <remarks>
/// Ranking follows <see cref="ScoreOrder"/>: higher score first, equal scores by lower corpus index, NaN last.
/// Results do not depend on chunk size, block size or thread count: every score is computed by the same sequence of
/// fused multiply-adds (8 lanes of partial sums over the dimension, summed, then the leftover dimensions), wherever
/// the pair falls in a tile.
/// </remarks>
public static class ExactSearch
{
    private const int Tile = 4;
    private const int Lanes = 8;

    /// <param name="queries">[Q, dimension] row-major.</param>
    /// <param name="corpus">[N, dimension] row-major.</param>
    /// <param name="k">Hits per query; each query gets min(k, N).</param>
    public static SearchResult Search(
        float[] queries, float[] corpus, int dimension, int k, ExactSearchOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ExactSearchOptions();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimension);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.CorpusChunkRows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.QueryBlockRows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.Threads);
        if (queries.Length % dimension != 0)
            throw new ArgumentException($"{queries.Length} query values are not rows of {dimension}", nameof(queries));
        if (corpus.Length % dimension != 0)
            throw new ArgumentException($"{corpus.Length} corpus values are not rows of {dimension}", nameof(corpus));

        int queryCount = queries.Length / dimension, corpusCount = corpus.Length / dimension;
        var indices = new int[queryCount][];
        var scores = new float[queryCount][];
        if (corpusCount == 0)
        {
            for (int q = 0; q < queryCount; q++) (indices[q], scores[q]) = ([], []);
            return new SearchResult(indices, scores);
        }

        // Smaller blocks when there are few queries, so that every thread gets some.
        int blockRows = Math.Max(1, Math.Min(options.QueryBlockRows, (queryCount + options.Threads - 1) / options.Threads));
        int chunkRows = Math.Min(options.CorpusChunkRows, corpusCount);
        int blocks = (queryCount + blockRows - 1) / blockRows;
        int hits = Math.Min(k, corpusCount);
        Parallel.For(
            0, blocks,
            new ParallelOptions { MaxDegreeOfParallelism = options.Threads, CancellationToken = cancellationToken },
            () => new float[blockRows * chunkRows],
            (block, _, buffer) =>
            {
                int first = block * blockRows, count = Math.Min(blockRows, queryCount - first);
                var heaps = new TopKHeap[count];
                for (int q = 0; q < count; q++) heaps[q] = new TopKHeap(hits);
                for (int chunkStart = 0; chunkStart < corpusCount; chunkStart += chunkRows)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    int chunkCount = Math.Min(chunkRows, corpusCount - chunkStart);
                    ScoreTile(queries, first, count, corpus, chunkStart, chunkCount, dimension, buffer);
                    for (int q = 0; q < count; q++)
                        Collect(heaps[q], buffer.AsSpan(q * chunkCount, chunkCount), chunkStart);
                }
                for (int q = 0; q < count; q++) (indices[first + q], scores[first + q]) = heaps[q].ToRanked();
                return buffer;
            },
            _ => { });
        return new SearchResult(indices, scores);
    }

    private static void Collect(TopKHeap heap, ReadOnlySpan<float> rowScores, int firstIndex)
    {
        for (int i = 0; i < rowScores.Length; i++)
        {
            float score = rowScores[i];
            // Cheap rejection first; equal scores and NaN go on to the full ScoreOrder comparison.
            if (heap.IsFull && score < heap.WorstScore) continue;
            heap.Offer(score, firstIndex + i);
        }
    }

    /// <summary>scores[q * corpusCount + c] = dot(queries[firstQuery + q], corpus[firstRow + c]).</summary>
    private static void ScoreTile(
        float[] queries, int firstQuery, int queryCount, float[] corpus, int firstRow, int corpusCount, int dimension, float[] scores)
    {
        ref float queryBase = ref MemoryMarshal.GetArrayDataReference(queries);
        ref float corpusBase = ref MemoryMarshal.GetArrayDataReference(corpus);
        int fullQueries = queryCount - queryCount % Tile, fullRows = corpusCount - corpusCount % Tile;
        // Corpus rows outside, queries inside: a few corpus rows stay in L1 while the query block (in L2) passes by.
        for (int c = 0; c < corpusCount; c += Tile)
        {
            bool fullRowTile = c < fullRows;
            for (int q = 0; q < queryCount; q += Tile)
            {
                if (fullRowTile && q < fullQueries)
                {
                    Dot4x4(ref queryBase, (nuint)(firstQuery + q) * (nuint)dimension, ref corpusBase, (nuint)(firstRow + c) * (nuint)dimension,
                        dimension, scores, q * corpusCount + c, corpusCount);
                    continue;
                }
                for (int qi = q; qi < Math.Min(q + Tile, queryCount); qi++)
                    for (int ci = c; ci < Math.Min(c + Tile, corpusCount); ci++)
                        scores[qi * corpusCount + ci] = Dot(ref queryBase, (nuint)(firstQuery + qi) * (nuint)dimension,
                            ref corpusBase, (nuint)(firstRow + ci) * (nuint)dimension, dimension);
            }
        }
    }

    /// <summary>One score, computed exactly as <see cref="Search"/> computes every score (for rescoring another search's hits).</summary>
    internal static float Dot(ReadOnlySpan<float> query, ReadOnlySpan<float> row) =>
        Dot(ref MemoryMarshal.GetReference(query), 0, ref MemoryMarshal.GetReference(row), 0, query.Length);

    /// <summary>The reference sequence of operations for one score; <see cref="Dot4x4"/> repeats it for 16 pairs at once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(ref float queryBase, nuint query, ref float corpusBase, nuint row, int dimension)
    {
        var sum = Vector256<float>.Zero;
        int d = 0;
        for (; d <= dimension - Lanes; d += Lanes)
            sum = Vector256.FusedMultiplyAdd(
                Vector256.LoadUnsafe(ref queryBase, query + (nuint)d), Vector256.LoadUnsafe(ref corpusBase, row + (nuint)d), sum);
        return Tail(ref queryBase, query, ref corpusBase, row, d, dimension, Vector256.Sum(sum));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Tail(ref float queryBase, nuint query, ref float corpusBase, nuint row, int d, int dimension, float sum)
    {
        for (; d < dimension; d++)
            sum = MathF.FusedMultiplyAdd(Unsafe.Add(ref queryBase, query + (nuint)d), Unsafe.Add(ref corpusBase, row + (nuint)d), sum);
        return sum;
    }

    private static void Dot4x4(ref float queryBase, nuint query0, ref float corpusBase, nuint row0, int dimension, float[] scores, int at, int stride)
    {
        nuint step = (nuint)dimension;
        nuint query1 = query0 + step, query2 = query1 + step, query3 = query2 + step;
        nuint row1 = row0 + step, row2 = row1 + step, row3 = row2 + step;
        Vector256<float> s00 = default, s01 = default, s02 = default, s03 = default;
        Vector256<float> s10 = default, s11 = default, s12 = default, s13 = default;
        Vector256<float> s20 = default, s21 = default, s22 = default, s23 = default;
        Vector256<float> s30 = default, s31 = default, s32 = default, s33 = default;
        int d = 0;
        for (; d <= dimension - Lanes; d += Lanes)
        {
            nuint o = (nuint)d;
            var c0 = Vector256.LoadUnsafe(ref corpusBase, row0 + o);
            var c1 = Vector256.LoadUnsafe(ref corpusBase, row1 + o);
            var c2 = Vector256.LoadUnsafe(ref corpusBase, row2 + o);
            var c3 = Vector256.LoadUnsafe(ref corpusBase, row3 + o);
            var q = Vector256.LoadUnsafe(ref queryBase, query0 + o);
            s00 = Vector256.FusedMultiplyAdd(q, c0, s00); s01 = Vector256.FusedMultiplyAdd(q, c1, s01);
            s02 = Vector256.FusedMultiplyAdd(q, c2, s02); s03 = Vector256.FusedMultiplyAdd(q, c3, s03);
            q = Vector256.LoadUnsafe(ref queryBase, query1 + o);
            s10 = Vector256.FusedMultiplyAdd(q, c0, s10); s11 = Vector256.FusedMultiplyAdd(q, c1, s11);
            s12 = Vector256.FusedMultiplyAdd(q, c2, s12); s13 = Vector256.FusedMultiplyAdd(q, c3, s13);
            q = Vector256.LoadUnsafe(ref queryBase, query2 + o);
            s20 = Vector256.FusedMultiplyAdd(q, c0, s20); s21 = Vector256.FusedMultiplyAdd(q, c1, s21);
            s22 = Vector256.FusedMultiplyAdd(q, c2, s22); s23 = Vector256.FusedMultiplyAdd(q, c3, s23);
            q = Vector256.LoadUnsafe(ref queryBase, query3 + o);
            s30 = Vector256.FusedMultiplyAdd(q, c0, s30); s31 = Vector256.FusedMultiplyAdd(q, c1, s31);
            s32 = Vector256.FusedMultiplyAdd(q, c2, s32); s33 = Vector256.FusedMultiplyAdd(q, c3, s33);
        }
        StoreRow(scores, at, ref queryBase, query0, ref corpusBase, row0, step, d, dimension, s00, s01, s02, s03);
        StoreRow(scores, at + stride, ref queryBase, query1, ref corpusBase, row0, step, d, dimension, s10, s11, s12, s13);
        StoreRow(scores, at + 2 * stride, ref queryBase, query2, ref corpusBase, row0, step, d, dimension, s20, s21, s22, s23);
        StoreRow(scores, at + 3 * stride, ref queryBase, query3, ref corpusBase, row0, step, d, dimension, s30, s31, s32, s33);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float[] scores, int at, ref float queryBase, nuint query, ref float corpusBase, nuint row0, nuint step,
        int d, int dimension, Vector256<float> sum0, Vector256<float> sum1, Vector256<float> sum2, Vector256<float> sum3)
    {
        scores[at] = Tail(ref queryBase, query, ref corpusBase, row0, d, dimension, Vector256.Sum(sum0));
        scores[at + 1] = Tail(ref queryBase, query, ref corpusBase, row0 + step, d, dimension, Vector256.Sum(sum1));
        scores[at + 2] = Tail(ref queryBase, query, ref corpusBase, row0 + 2 * step, d, dimension, Vector256.Sum(sum2));
        scores[at + 3] = Tail(ref queryBase, query, ref corpusBase, row0 + 3 * step, d, dimension, Vector256.Sum(sum3));
    }
}
