# Installation layout beyond the binaries (whose install() rules sit in each
# program's CMakeLists.txt) and the Debian package. Included at the end of the
# top-level CMakeLists.txt.
#
#   cmake --install build --prefix /usr/local     binaries, schema, units, examples, guide
#   cd build && cpack -G DEB                      wsmtp_<version>_<arch>.deb
#
# The package installs the systemd units disabled and creates one system user
# per daemon (wsmtp, wroute, wdeliver, wreaper); nothing runs until /etc/wsmtp/wsmtp.conf exists and the admin enables
# the units this host needs.

include(GNUInstallDirs)

file(GLOB WSMTP_UNITS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/deploy/systemd/*.service)
install(FILES ${WSMTP_UNITS} DESTINATION lib/systemd/system)

# Examples exclude demo.conf, which only deploy/run uses (it has a placeholder).
install(FILES
          ${PROJECT_SOURCE_DIR}/deploy/examples/wsmtp.conf
          ${PROJECT_SOURCE_DIR}/deploy/examples/mx.conf
          ${PROJECT_SOURCE_DIR}/deploy/examples/router.conf
          ${PROJECT_SOURCE_DIR}/deploy/examples/mailbox.conf
          ${PROJECT_SOURCE_DIR}/deploy/examples/relay.conf
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
# The mail admin's guide is the package's README; the project overview goes next to it.
install(FILES ${PROJECT_SOURCE_DIR}/deploy/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME OVERVIEW.md)

set(CPACK_PACKAGE_NAME wsmtp)
set(CPACK_PACKAGE_VENDOR "WSMTP")
set(CPACK_PACKAGE_CONTACT "WSMTP maintainers <postmaster@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "staged mail pipeline around PostgreSQL (SMTP listener, router, delivery agent)")
set(CPACK_PACKAGE_DESCRIPTION
    "WSMTP receives mail (wsmtp), routes it (wroute) and delivers it (wdeliver) in separate
daemons that coordinate only through a message state machine in PostgreSQL, so each can
run on its own hosts. wreaper keeps the queue clean; wsmtpctl is the operator's CLI.")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
# Debug information stays in the build tree; the package carries stripped binaries.
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies (libpq, libpqxx, libevent, OpenSSL, ...) come from the binaries.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql (>= 13), dovecot-pop3d")
# No Provides/Conflicts on mail-transport-agent: WSMTP ships no /usr/sbin/sendmail,
# and router or mailbox hosts keep their local MTA for system mail.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/prerm
    ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)

include(CPack)
