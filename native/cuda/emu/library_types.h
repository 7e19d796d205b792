// gpt-native's CUDA emulator: the data-type enum of CUDA's library_types.h (values as in CUDA 12/13).
#pragma once
typedef enum cudaDataType_t {
  CUDA_R_32F = 0,
  CUDA_R_64F = 1,
  CUDA_R_16F = 2,
  CUDA_R_16BF = 14,
} cudaDataType;
