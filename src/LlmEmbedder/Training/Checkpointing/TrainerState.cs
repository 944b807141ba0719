using System.Text.Json;
using System.Text.Json.Serialization;
using LlmEmbedder.Data;

namespace LlmEmbedder.Training.Checkpointing;

/// <summary>
/// What a checkpoint needs besides weights and optimizer moments to continue exactly: trainer_state.json.
/// <paramref name="TorchThreads"/> is recorded because libtorch's CPU kernels sum in a thread-dependent order: a
/// resume on another thread count continues correctly but not bit for bit.
/// </summary>
public sealed record TrainerState(int GlobalStep, int TotalSteps, BatchSamplerState Sampler, List<LossPoint> LossHistory, int? TorchThreads = null)
{
    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
    };

    public void Save(string path) => FileUtil.WriteAllTextAtomic(path, JsonSerializer.Serialize(this, JsonOptions));

    public static TrainerState Load(string path)
    {
        try
        {
            return JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(path), JsonOptions)
                ?? throw new EmbedderException($"{path}: empty trainer state");
        }
        catch (JsonException e)
        {
            throw new EmbedderException($"{path}: not a trainer state ({e.Message})");
        }
    }
}

/// <summary>The loss of one optimizer step (for the loss curve and for checking a resumed run).</summary>
/// <param name="Dataset">The index (in --train_data order) of the dataset the step's batch came from; null when it mixed
/// datasets (no --inbatch_same_dataset) or was written by an older version.</param>
/// <param name="GradNorm">The gradients' norm before clipping (Hugging Face logs it as grad_norm); null when written by an
/// older version.</param>
public sealed record LossPoint(int Step, double Loss, double LearningRate,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] int? Dataset = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? GradNorm = null);
