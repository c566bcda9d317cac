# wsmtp_program(LIB EXE DEST): one program folder. Its logic (every .cpp but
# main.cpp, subfolders such as db/ included) becomes the static library LIB, so
# the tests link the same code; main.cpp becomes the executable EXE, installed
# in DEST. A subfolder's header is included by its path from the program folder
# ("db/queue.h").
#
# Layering (STYLE.md §2): LIB's include path is its own folder plus common/
# (from wsmtp_common), never the repository root, so `#include "router/…"` from
# listener/ does not compile. tests/layering/ checks that this stays so.
function(wsmtp_program lib exe dest)
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  list(REMOVE_ITEM sources ${CMAKE_CURRENT_SOURCE_DIR}/main.cpp)
  add_library(${lib} STATIC ${sources})
  target_link_libraries(${lib} PUBLIC wsmtp_common)
  target_include_directories(${lib} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  add_executable(${exe} main.cpp)
  target_link_libraries(${exe} PRIVATE ${lib})
  install(TARGETS ${exe} RUNTIME DESTINATION ${dest})
endfunction()
