using System.CommandLine;
using System.Diagnostics;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Retrieval.Scoring;

namespace LlmEmbedder.Cli.Commands;

/// <summary>score: teacher_scores for training JSONL from a cross-encoder (FlagEmbedding's add_reranker_score) or an embedder.</summary>
internal static class ScoreCommand
{
    private const string SigmoidDescription = "Apply a sigmoid to the cross-encoder's logits (FlagEmbedding's normalize=True); default: raw logits";

    public static Command Create()
    {
        var inputFile = new Option<string>("--input_file") { Description = "Training JSONL: {query, pos: [...], neg: [...], ...} (or chat rows with \"history\")", Required = true };
        var outputFile = new Option<string>("--output_file")
        {
            Description = "The same rows with \"teacher_scores\": one score per pos, then per neg (per history entry), as training reads them", Required = true,
        };
        var sigmoid = new Option<bool>("--sigmoid") { Description = SigmoidDescription };
        var encoderOptions = new EncoderOptions(defaultBatchSize: 32);
        encoderOptions.Model.Description = "The teacher: a cross-encoder (a BertForSequenceClassification folder, Hugging Face's or a sentence-transformers " +
            "CrossEncoder, one label) or an embedding model (as encode takes it); a folder or a hub id. --task, --version, --instruction_file, --pooling_method, --dense_metric and --dtype apply to embedding models only";
        var command = new Command("score",
            "Add teacher_scores to training data: a cross-encoder's logit for each (query, text) pair, or an embedding model's similarity")
        {
            encoderOptions.Model, inputFile, outputFile, sigmoid,
        };
        encoderOptions.AddTo(command);
        command.SetAction(parsed =>
        {
            var outputPath = parsed.GetRequiredValue(outputFile);
            OutputPath.CheckFile(outputPath, "--output_file");
            var modelArgument = parsed.GetRequiredValue(encoderOptions.Model);
            var modelDir = ModelArgument.Resolve(modelArgument);
            IPairScorer scorer;
            if (CrossEncoder.IsCrossEncoderFolder(modelDir))
            {
                if (encoderOptions.EmbedderOnlyFlagsGiven(parsed).ToList() is [var first, ..])
                    throw new EmbedderException($"{first} applies to embedding models; {modelArgument} is a cross-encoder");
                scorer = OpenCrossEncoder(modelDir, encoderOptions.MaxLength(parsed), encoderOptions.BatchSize(parsed), parsed.GetValue(sigmoid));
            }
            else
            {
                if (parsed.GetValue(sigmoid)) throw new EmbedderException($"--sigmoid applies to cross-encoders; {modelArgument} is an embedding model");
                var request = encoderOptions.Request(parsed, modelDir);
                EncoderOptions.Note(request);
                scorer = new EmbeddingPairScorer(new CachingEncoder(request, cache: null), request.Spec.Instructions.For(encoderOptions.Task(parsed)),
                    request.Spec.Metric, encoderOptions.BatchSize(parsed));
            }
            using (scorer)
            {
                var clock = Stopwatch.StartNew();
                var progress = new ThrottledProgress<ScoringProgress>(p => p.Done >= p.Total,
                    (p, _) => Console.Error.WriteLine($"scoring {p.What} {p.Done}/{p.Total}"));
                var result = TeacherScoring.Run(scorer, parsed.GetRequiredValue(inputFile), outputPath, encoderOptions.Encoding(parsed), progress);
                Console.Error.WriteLine($"wrote {outputPath}: {result.Rows} rows, {result.Pairs} teacher scores ({scorer.Description})" +
                    (result.ScoresReplaced > 0 ? $"; {result.ScoresReplaced} rows had teacher_scores, replaced" : "") +
                    $" in {clock.Elapsed.TotalSeconds:F1} s");
            }
            return 0;
        });
        return command;
    }

    /// <summary>--sigmoid as score has it, for other commands that take a cross-encoder.</summary>
    public static Option<bool> SigmoidOption(string name) => new(name) { Description = SigmoidDescription };

    /// <summary>Loads a cross-encoder folder, saying in a note when the folder asks for an activation other than the one used.</summary>
    public static CrossEncoderScorer OpenCrossEncoder(string dir, int? maxLength, int batchSize, bool sigmoid)
    {
        var model = CrossEncoder.Load(dir, maxLength);
        if (model.DeclaredActivation is { } declared && !declared.EndsWith(sigmoid ? ".Sigmoid" : ".Identity", StringComparison.Ordinal))
            Console.Error.WriteLine($"llm-embedder: note: {dir} names the activation {declared} for its scores; " +
                (sigmoid ? "scores are sigmoid(logit) (--sigmoid)" : "scores are raw logits (add --sigmoid for sigmoid(logit))"));
        return new CrossEncoderScorer(model, batchSize, sigmoid);
    }
}
