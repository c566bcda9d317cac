# wsmtp_program(LIB EXE DEST [EXTRA_INCLUDES dirs...]): one program folder. Its
# logic (every .cpp but main.cpp) becomes the static library LIB, so the tests
# link the same code; main.cpp becomes the executable EXE, installed in DEST.
function(wsmtp_program lib exe dest)
  cmake_parse_arguments(ARG "" "" "EXTRA_INCLUDES" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  list(REMOVE_ITEM sources ${CMAKE_CURRENT_SOURCE_DIR}/main.cpp)
  add_library(${lib} STATIC ${sources})
  target_link_libraries(${lib} PUBLIC wsmtp_common)
  target_include_directories(${lib} PUBLIC ${ARG_EXTRA_INCLUDES} ${PROJECT_SOURCE_DIR})
  add_executable(${exe} main.cpp)
  target_link_libraries(${exe} PRIVATE ${lib})
  install(TARGETS ${exe} RUNTIME DESTINATION ${dest})
endfunction()
