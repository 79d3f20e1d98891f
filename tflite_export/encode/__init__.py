"""Encode constant tensors for TFLM's DECODE operator: LUT, prune, Huffman.

TFLM (``kernels/decode.cc``) expands encoded tensors into the arena right
before the operator that reads them, with three decoders: lookup tables
(clustered weights), prune (a bitmask of kept values, for sparse weights) and
Huffman (entropy-coded int8/int16 values). These modules write exactly the
encoded data and ancillary tables those decoders read, insert the DECODE
operators with numpy and flatbuffers only, and `encode` chooses one encoding
per tensor by flash saved, proving the result bit-exact on TFLM.
"""

from tflite_export.encode._rewrite import DECODE_CUSTOM_CODE, Encoding, insert_decodes
from tflite_export.encode.candidates import (
    DECODE_OVERHEAD_BYTES,
    ENCODINGS,
    EncodeCandidate,
    encode_candidates,
)
from tflite_export.encode.encoder import ArenaBudgetError, EncodedTensor, EncodeError, EncodeResult, encode
from tflite_export.encode.huffman import encode_huffman
from tflite_export.encode.lut import LUT_MAX_BITS, encode_lut
from tflite_export.encode.prune import encode_prune, prune_fill

__all__ = [
    "encode",
    "EncodeResult",
    "EncodedTensor",
    "EncodeError",
    "ArenaBudgetError",
    "EncodeCandidate",
    "encode_candidates",
    "ENCODINGS",
    "DECODE_OVERHEAD_BYTES",
    "DECODE_CUSTOM_CODE",
    "Encoding",
    "insert_decodes",
    "encode_lut",
    "encode_prune",
    "prune_fill",
    "encode_huffman",
    "LUT_MAX_BITS",
]
