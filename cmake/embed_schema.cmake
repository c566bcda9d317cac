# Turns schema/NNN_name.sql into a C++ table of migrations, so wsmtpctl carries the
# exact schema it was built with and can refuse a database newer than itself.
# Only the numbered files: schema/current.sql is a generated reference
# (tests/harness/schema_dump.py), never applied.
# Invoked at build time: cmake -DSCHEMA_DIR=... -DOUTPUT=... -P embed_schema.cmake
file(GLOB sql_files "${SCHEMA_DIR}/[0-9][0-9][0-9]_*.sql")
list(SORT sql_files)
set(body "// Generated from schema/*.sql by cmake/embed_schema.cmake. Do not edit.\n")
string(APPEND body "#include \"pg/schema_migrations.h\"\n\nnamespace wsmtp::common::pg {\n\n")
string(APPEND body "const std::vector<Migration>& embedded_migrations() {\n  static const std::vector<Migration> all = {\n")
foreach(f IN LISTS sql_files)
  get_filename_component(name "${f}" NAME_WE)
  string(SUBSTRING "${name}" 0 3 num)
  math(EXPR version "${num}")
  file(READ "${f}" sql)
  string(APPEND body "    {${version}, \"${name}\", R\"wsmtp_sql(${sql})wsmtp_sql\"},\n")
endforeach()
string(APPEND body "  };\n  return all;\n}\n\n}  // namespace wsmtp::common::pg\n")
file(WRITE "${OUTPUT}.tmp" "${body}")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
