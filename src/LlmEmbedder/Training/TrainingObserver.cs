namespace LlmEmbedder.Training;

/// <summary>One logged optimizer step. Loss is the mean over the steps since the previous log.</summary>
public sealed record TrainingStepLog(
    int Step, int TotalSteps, double Epoch, double Loss, double LearningRate, double GradNorm,
    double SamplesPerSecond, TimeSpan Elapsed, TimeSpan Remaining);

/// <summary>How the trainer tells the outside world what it is doing (the library does no console I/O).</summary>
public interface ITrainingObserver
{
    void Message(string text);

    /// <summary>Called after every optimizer step; <paramref name="logged"/> is true at logging_steps boundaries.</summary>
    void Step(TrainingStepLog log, bool logged);

    void Evaluated(int step, string label, IReadOnlyDictionary<string, double> metrics);
}
