# The one place that turns SKETCHWALK_CUDA_ARCHS ("8.0;9.0a", TORCH_CUDA_ARCH_LIST spelling)
# into nvcc flags; used by the extension (CMakeLists.txt) and the benchmarks (bench/cpp).
#
#   sketchwalk_cuda_flags(<archs> <out_flags_var> <out_sm_names_var>)
#     out_flags: -gencode=arch=compute_90a,code=sm_90a ... plus the project's nvcc options, and
#                -DSKETCHWALK_HAS_SM90A=1 when 9.0a is among the archs (the Hopper prefill,
#                csrc/cuda/sparse_prefill_sm90.cu, runs only where its sm_90a code exists)
#     out_sm_names: sm_90a ... (what `python -m sketchwalk info` reports)
function(sketchwalk_cuda_flags archs out_flags out_sms)
  set(flags "")
  set(sms "")
  foreach(arch IN LISTS archs)
    string(REGEX MATCH "^([0-9]+)\\.([0-9]+)([a-z]?)$" match "${arch}")
    if(NOT match)
      message(FATAL_ERROR "SKETCHWALK_CUDA_ARCHS entry '${arch}' is not of the form 8.0 or 9.0a")
    endif()
    set(sm "${CMAKE_MATCH_1}${CMAKE_MATCH_2}${CMAKE_MATCH_3}")
    # The -gencode form: `-arch=sm_90a` also ran a plain sm_90 pass that rejects wgmma (HOPPER.md).
    list(APPEND flags "-gencode=arch=compute_${sm},code=sm_${sm}")
    list(APPEND sms "sm_${sm}")
  endforeach()
  if("9.0a" IN_LIST archs)
    list(APPEND flags -DSKETCHWALK_HAS_SM90A=1)
  endif()
  list(APPEND flags -O3 --use_fast_math -lineinfo --expt-relaxed-constexpr)
  set(${out_flags} "${flags}" PARENT_SCOPE)
  set(${out_sms} "${sms}" PARENT_SCOPE)
endfunction()
