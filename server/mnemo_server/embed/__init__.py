"""Embedding: text in, L2-normalized float32 vectors out.

    base.Embedder                   the interface
    local.SentenceTransformerEmbedder   in-process model (default all-MiniLM-L6-v2)
    http.OpenAIHttpEmbedder         OpenAI-compatible /embeddings (Ollama, TEI, vLLM)
    batching.MicroBatchingEmbedder  concurrent calls share model calls
    cached.CachingEmbedder          repeated texts answered from a VectorCache
    vectors.check_vector            validation of client-supplied vectors

The server composes them outermost first, so that only cache misses queue up
for a batch: CachingEmbedder(MicroBatchingEmbedder(SentenceTransformerEmbedder())).
Nothing is imported here, so that importing the package does not load torch.
"""
