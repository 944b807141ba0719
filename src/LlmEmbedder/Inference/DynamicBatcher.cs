using System.Diagnostics;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Inference;

/// <summary>
/// Merges concurrent calls into forward passes, as text-embeddings-inference does: one worker thread owns the model
/// and takes the waiting texts of one side, longest first, into a batch of at most <c>maxBatchSize</c> texts and
/// <c>maxBatchTokens</c> padded tokens. Calls wait in a bounded FIFO queue; a call is answered once all its texts ran.
/// The model is only ever used by the worker, so callers need no lock.
/// </summary>
internal sealed class DynamicBatcher : IDisposable
{
    // How many waiting texts one batch is chosen from: enough to sort by length, few enough to keep the oldest first.
    private const int WindowBatches = 8;

    private readonly Func<EmbeddingRole, IEmbeddingModel> modelFor;
    private readonly int dimension, maxBatchSize, maxBatchTokens, maxQueue;
    private readonly object gate = new();
    private readonly List<Call> waiting = [];
    private readonly Thread worker;
    private bool stopping;

    public DynamicBatcher(Func<EmbeddingRole, IEmbeddingModel> modelFor, int dimension, TextEmbedderOptions options)
    {
        this.modelFor = modelFor;
        this.dimension = dimension;
        (maxBatchSize, maxBatchTokens, maxQueue) = (options.MaxBatchSize, options.MaxBatchTokens, options.MaxQueue);
        worker = new Thread(Work) { IsBackground = true, Name = "llm-embedder batcher" };
        worker.Start();
    }

    /// <summary>Each forward pass, on the worker thread once it is done.</summary>
    public event Action<BatchStatistics>? BatchCompleted;

    /// <summary>Calls whose texts have not all been taken into a batch yet.</summary>
    public int Waiting
    {
        get
        {
            lock (gate) return waiting.Count;
        }
    }

    public Task<Embeddings> Enqueue(TokenizedTexts texts, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (texts.Count == 0) return Task.FromResult(new Embeddings([], 0, dimension, 0));
        var call = new Call(texts, dimension);
        // Registered before the call is queued, so that a cancellation can never miss it; a call cancelled before it
        // is queued is not queued.
        if (cancellationToken.CanBeCanceled)
            call.Registration = cancellationToken.Register(() =>
            {
                lock (gate) waiting.Remove(call);
                call.Completion.TrySetCanceled(cancellationToken);
            });
        lock (gate)
        {
            if (stopping || waiting.Count >= maxQueue) call.Registration.Dispose();
            ObjectDisposedException.ThrowIf(stopping, this);
            if (waiting.Count >= maxQueue) throw new QueueFullException(maxQueue);
            if (!call.Completion.Task.IsCompleted) waiting.Add(call);
            Monitor.Pulse(gate);
        }
        return call.Completion.Task;
    }

    private void Work()
    {
        while (true)
        {
            List<(Call Call, int Row)> batch;
            int stillWaiting;
            lock (gate)
            {
                while (waiting.Count == 0 && !stopping) Monitor.Wait(gate);
                if (waiting.Count == 0) return;
                batch = TakeBatch();
                stillWaiting = waiting.Count;
            }
            Run(batch, stillWaiting);
        }
    }

    /// <summary>
    /// The next batch: the first waiting call's side; from the oldest calls of that side, a window of texts sorted
    /// by length (longest first), cut where the padded tokens or the text count would exceed the budget. Each call's
    /// rows are kept sorted the same way, so what a batch takes of a call is always the head of its rest.
    /// </summary>
    private List<(Call Call, int Row)> TakeBatch()
    {
        var role = waiting[0].Texts.Role;
        var window = new List<(Call Call, int Row, int Length)>();
        foreach (var call in waiting.Where(c => c.Texts.Role == role))
        {
            for (int next = call.Taken; next < call.Order.Length && window.Count < maxBatchSize * WindowBatches; next++)
                window.Add((call, call.Order[next], call.Texts.Rows[call.Order[next]].Length));
            if (window.Count >= maxBatchSize * WindowBatches) break;
        }
        // A stable sort: rows of equal length keep their call's order, so each call gives up a head of its rest.
        var sorted = window.OrderByDescending(w => w.Length).ToList();
        int longest = sorted[0].Length, take = 1;
        while (take < sorted.Count && take < maxBatchSize && (take + 1L) * longest <= maxBatchTokens) take++;
        var batch = sorted.Take(take).Select(w => (w.Call, w.Row)).ToList();
        foreach (var (call, _) in batch)
            if (++call.Taken == call.Order.Length) waiting.Remove(call);
        return batch;
    }

    private void Run(List<(Call Call, int Row)> batch, int stillWaiting)
    {
        var role = batch[0].Call.Texts.Role;
        var clock = Stopwatch.StartNew();
        var rows = batch.Select(b => b.Call.Texts.Rows[b.Row]).ToList();
        float[] values;
        try
        {
            var model = modelFor(role);
            values = model.Embed(model.Tokenizer.PadBatch(rows));
        }
        catch (Exception error)
        {
            foreach (var call in batch.Select(b => b.Call).Distinct())
            {
                lock (gate) waiting.Remove(call);
                call.Completion.TrySetException(error);
            }
            return;
        }
        for (int i = 0; i < batch.Count; i++)
        {
            var (call, row) = batch[i];
            Array.Copy(values, (long)i * dimension, call.Output, (long)row * dimension, dimension);
            if (++call.Done == call.Order.Length)
            {
                call.Registration.Dispose();
                call.Completion.TrySetResult(new Embeddings(call.Output, call.Texts.Count, dimension, call.Texts.TokenCount));
            }
        }
        int longest = rows.Max(r => r.Length);
        BatchCompleted?.Invoke(new BatchStatistics(role, rows.Count, rows.Sum(r => r.Length), rows.Count * longest, clock.Elapsed, stillWaiting));
    }

    /// <summary>Stops taking calls, finishes the ones already queued, and stops the worker.</summary>
    public void Dispose()
    {
        lock (gate)
        {
            stopping = true;
            Monitor.PulseAll(gate);
        }
        if (Thread.CurrentThread != worker) worker.Join();
    }

    private sealed class Call(TokenizedTexts texts, int dimension)
    {
        public TokenizedTexts Texts { get; } = texts;

        /// <summary>Row indices, longest first: the order the call's rows are taken in.</summary>
        public int[] Order { get; } = Enumerable.Range(0, texts.Count).OrderByDescending(i => texts.Rows[i].Length).ToArray();

        public float[] Output { get; } = new float[(long)texts.Count * dimension];

        /// <summary>Rows taken into a batch (under the batcher's lock).</summary>
        public int Taken { get; set; }

        /// <summary>Rows computed (on the worker).</summary>
        public int Done { get; set; }

        public CancellationTokenRegistration Registration { get; set; }

        public TaskCompletionSource<Embeddings> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
