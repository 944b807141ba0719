using System.CommandLine;
using LlmEmbedder.Inference;
using LlmEmbedder.Server;

namespace LlmEmbedder.Cli.Commands;

/// <summary>serve: the model behind an OpenAI-compatible embeddings API, used as its encoder spec says.</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var urls = new Option<string>("--urls")
        {
            Description = "Where to listen, ';' between addresses (loopback only unless told: http://0.0.0.0:8080 listens on every interface)",
            DefaultValueFactory = _ => EmbeddingServerOptions.DefaultUrl,
        };
        var apiKey = new Option<string?>("--api_key")
        {
            Description = $"Require 'Authorization: Bearer KEY' on /v1 requests (or set {EmbeddingServerOptions.ApiKeyVariable}, which other users cannot see in the process list)",
        };
        var maxBatchTokens = new Option<int>("--max_batch_tokens")
        {
            Description = "Padded tokens per forward pass at most (texts x longest text); concurrent requests are merged up to it",
            DefaultValueFactory = _ => new TextEmbedderOptions().MaxBatchTokens,
        }.WithRange(ArgumentRanges.Of<TextEmbedderOptions>(nameof(TextEmbedderOptions.MaxBatchTokens)));
        var maxQueue = new Option<int>("--max_queue")
        {
            Description = "Requests waiting for the model at most; one more is answered 429 with Retry-After (fewer than --batch_size also caps how many requests one forward pass merges)",
            DefaultValueFactory = _ => new TextEmbedderOptions().MaxQueue,
        }.WithRange(ArgumentRanges.Of<TextEmbedderOptions>(nameof(TextEmbedderOptions.MaxQueue)));
        var maxInputs = new Option<int>("--max_inputs")
        {
            Description = "Texts in one request at most (more: 413)",
            DefaultValueFactory = _ => 2048,
        }.WithRange(ArgumentRanges.Of<EmbeddingServerOptions>(nameof(EmbeddingServerOptions.MaxInputs)));
        var autoTruncate = new Option<bool>("--auto_truncate")
        {
            Description = "Cut texts longer than the model's max length instead of answering 400 (a request may also send \"truncate\": true)",
        };
        var servedName = new Option<string?>("--served_model_name") { Description = "The model name in responses and /v1/models (default: the --model folder's name or hub id)" };
        var encoderOptions = new EncoderOptions(defaultBatchSize: new TextEmbedderOptions().MaxBatchSize,
            taskDescription: "Instruction task of requests that name none (a model with several tasks needs it or a task in each request)");

        var command = new Command("serve", "Serve the model with an OpenAI-compatible embeddings API (POST /v1/embeddings), health and Prometheus metrics")
        {
            encoderOptions.Model, encoderOptions.Dimensions, urls, apiKey, maxBatchTokens, maxQueue, maxInputs, autoTruncate, servedName,
        };
        encoderOptions.AddTo(command);
        command.SetAction(parsed =>
        {
            var modelArgument = parsed.GetRequiredValue(encoderOptions.Model);
            var request = encoderOptions.Request(parsed, modelArgument);
            var task = encoderOptions.Task(parsed);
            if (task is not null) request.Spec.Instructions.For(task);
            var embedderOptions = new TextEmbedderOptions
            {
                MaxBatchSize = encoderOptions.BatchSize(parsed),
                MaxBatchTokens = parsed.GetValue(maxBatchTokens),
                MaxQueue = parsed.GetValue(maxQueue),
                Backend = request.Backend ?? InferenceBackend.Torch,
            }.Validated();
            var name = parsed.GetValue(servedName) ?? TextEmbedder.ModelName(modelArgument);
            var serverOptions = new EmbeddingServerOptions
            {
                ModelName = name,
                Urls = parsed.GetRequiredValue(urls).Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                ApiKey = parsed.GetValue(apiKey) ?? Environment.GetEnvironmentVariable(EmbeddingServerOptions.ApiKeyVariable),
                MaxInputs = parsed.GetValue(maxInputs),
                Task = task,
                AutoTruncate = parsed.GetValue(autoTruncate),
                Dimensions = parsed.GetValue(encoderOptions.Dimensions),
                Log = line => Console.Error.WriteLine($"llm-embedder: {line}"),
            };
            EncoderOptions.Note(request);
            return Run(() => new TextEmbedder(request, name, embedderOptions), serverOptions).GetAwaiter().GetResult();
        });
        return command;
    }

    private static async Task<int> Run(Func<TextEmbedder> load, EmbeddingServerOptions options)
    {
        EmbeddingServer server;
        try
        {
            server = await EmbeddingServer.StartAsync(load, options);
        }
        catch (Exception error) when (error is IOException or InvalidOperationException or FormatException or UriFormatException)
        {
            throw new EmbedderException($"cannot listen on {string.Join(", ", options.Urls)}: {error.Message}");
        }
        await using (server)
        {
            Console.Error.WriteLine($"llm-embedder: listening on {string.Join(", ", server.Addresses)} (POST /v1/embeddings; loading {options.ModelName}; " +
                $"{(options.ApiKey is null ? "no API key" : "API key required")}); Ctrl-C or SIGTERM stops");
            await server.WaitForShutdownAsync();
        }
        // A load that failed stopped the server: its error is the command's.
        if (server.ModelLoaded.IsFaulted) throw server.ModelLoaded.Exception!.InnerException!;
        Console.Error.WriteLine("llm-embedder: stopped");
        return 0;
    }
}
